"""Baselines for the HTTP benchmarks: the least an aiohttp server on uvloop can do to answer
the same request. `swap` returns the same JSON shape as /v1/swap; `twiml` a fixed TwiML."""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

SWAP = {"visitor": "v_0123456789abcdefghijkl", "session": "s_0123456789abcdefghijkl",
        "source": "Google Ads", "number": "+14155550101", "formatted": "(415) 555-0101",
        "replaces": ["+18005550100"]}
TWIML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="http://x/v1/voice/'
         'twilio/status?site=bench" answerOnBridge="true" method="POST" timeout="30">'
         '<Number>+18005550100</Number></Dial></Response>')


async def swap(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response(SWAP, headers={"Cache-Control": "no-store"})


async def twiml(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(text=TWIML, content_type="application/xml")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    app = web.Application()
    handler = swap if kind == "swap" else twiml
    app.router.add_post("/v1/swap", handler)
    app.router.add_post("/v1/voice/twilio", handler)
    app.router.add_get("/healthz", healthz)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
