"""The website snippet `GET /swap.js` and the `/demo` page that shows it at work.

swap.js (gateway/static/swap.js, served as written: no build step) is read once when the app is
built and served from memory, gzip-compressed ahead of time. Caching follows how the URL is
used:
- the plain `/swap.js` a customer pastes into every page gets a short max-age and a (weak)
  ETag, so a new release reaches every site within minutes and a revalidation is a 304;
- a versioned URL, `/swap.js?v=<version>` or `/swap.<version>.js` (version = content hash,
  `Asset.version`), is immutable for a year. A version that is not the current one (a page
  cached across a release) gets today's file with the short max-age rather than a 404, so the
  page still swaps.

`/demo` is a stand-in customer page for the demo site (`gateway/demo.toml`, served on the
gateway's own origin, which that site allows) used by `make run`.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ETag, web

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SHORT_MAX_AGE_S = 300  # a new swap.js reaches every page within 5 minutes of a release
LONG_MAX_AGE_S = 31_536_000  # one year: the customary lifetime of a content-addressed URL
VERSION_LEN = 12  # hex digits of the content hash: unique across any number of releases
DEMO_SITE = "demo"  # the site key in gateway/demo.toml
JS_TYPE = "text/javascript"  # RFC 9239: the one registered JavaScript media type


@dataclass(frozen=True, slots=True)
class Asset:
    """A file served from memory: its bytes, the same gzipped, and its content version."""

    body: bytes
    gzipped: bytes
    version: str

    @classmethod
    def load(cls, path: Path) -> Asset:
        body = path.read_bytes()
        version = hashlib.sha256(body).hexdigest()[:VERSION_LEN]
        return cls(body, gzip.compress(body, compresslevel=9, mtime=0), version)

    @property
    def etag(self) -> ETag:
        # Weak: the gzipped and the plain bytes are the same script (RFC 9110 8.8.3.3).
        return ETag(value=self.version, is_weak=True)


def accepts_gzip(header: str) -> bool:
    """True when an Accept-Encoding value allows gzip (and does not refuse it with q=0)."""
    for part in header.lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not q or float(q) > 0
            except ValueError:
                return True  # a garbled weight still names gzip
    return False


def _not_modified(request: web.Request, asset: Asset) -> bool:
    tags = request.if_none_match
    return bool(tags) and any(t.value in (asset.version, "*") for t in tags or ())


class Snippet:
    """The handlers of swap.js and the demo page, bound to the loaded asset."""

    def __init__(self, asset: Asset) -> None:
        self.asset = asset

    @property
    def versioned_path(self) -> str:
        return f"/swap.js?v={self.asset.version}"

    async def script(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info.get("version") or request.query.get("v")
        immutable = version == self.asset.version
        max_age = LONG_MAX_AGE_S if immutable else SHORT_MAX_AGE_S
        headers = {
            "Cache-Control": f"public, max-age={max_age}" + (", immutable" if immutable else ""),
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
            # Lets a page load it with `crossorigin` + Subresource Integrity, or under COEP.
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
        }
        if _not_modified(request, self.asset):
            resp = web.Response(status=304, headers=headers)
        elif accepts_gzip(request.headers.get("Accept-Encoding", "")):
            resp = web.Response(body=self.asset.gzipped, headers={
                **headers, "Content-Encoding": "gzip"}, content_type=JS_TYPE, charset="utf-8")
        else:
            resp = web.Response(body=self.asset.body, headers=headers, content_type=JS_TYPE,
                                charset="utf-8")
        resp.etag = self.asset.etag
        return resp

    async def demo(self, request: web.Request) -> web.Response:
        page = DEMO_PAGE.format(src=html.escape(self.versioned_path), site=DEMO_SITE)
        return web.Response(text=page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})


def routes() -> list[web.RouteDef]:
    snippet = Snippet(Asset.load(STATIC_DIR / "swap.js"))
    return [
        web.get("/swap.js", snippet.script),
        web.get("/swap.{version:[0-9a-f]+}.js", snippet.script),
        web.get("/demo", snippet.demo),
    ]


# The anti-flicker CSS is the one the README documents: numbers marked `dni-number` stay hidden
# while <html> has `dni-pending` (swap.js removes it when done or out of time), and the
# animation shows them after 1.5 s even if swap.js never loads.
DEMO_PAGE = """<!doctype html>
<html lang="en" class="dni-pending">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo Plumbing - dni-gateway demo</title>
<link rel="icon" href="data:,">
<style>
  html.dni-pending .dni-number {{ visibility: hidden; animation: dni-release 0s 1.5s forwards; }}
  @keyframes dni-release {{ to {{ visibility: visible; }} }}
  body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto;
         padding: 0 1rem; color: #222; }}
  .call {{ font-size: 1.6rem; font-weight: 600; }}
  pre {{ background: #f4f4f4; padding: .75rem; overflow-x: auto; }}
  td {{ padding: .1rem .8rem .1rem 0; }}
</style>
<script async src="{src}" data-site="{site}"></script>
</head>
<body>
<h1>Demo Plumbing</h1>
<p>A stand-in customer page with the snippet pasted in. The business number
(800) 555-0100 is printed below in many formats; swap.js replaces each with this visit's
tracking number in the same format.</p>
<p>Arrive as: <a href="?gclid=demo-click">a Google Ads click</a> &middot;
<a href="?">a direct visit</a></p>
<p class="call">Call <a class="dni-number" href="tel:+18005550100">(800) 555-0100</a></p>
<table>
<tr><td>dashes</td><td>800-555-0100</td></tr>
<tr><td>dots</td><td>800.555.0100</td></tr>
<tr><td>spaces</td><td>800 555 0100</td></tr>
<tr><td>international</td><td>+1 800 555 0100</td></tr>
<tr><td>long distance</td><td>1-800-555-0100</td></tr>
<tr><td>digits only</td><td>8005550100</td></tr>
<tr data-dni-noswap><td>opted out</td><td>(800) 555-0100</td></tr>
</table>
<p>The gateway's answer for this page view:</p>
<pre id="answer" data-dni-noswap>waiting for the gateway...</pre>
<script>
  addEventListener("load", function () {{
    var out = document.getElementById("answer");
    if (!window.dni || !window.dni.ready) {{ out.textContent = "swap.js did not load"; return; }}
    window.dni.ready.then(function (a) {{
      out.textContent = a ? JSON.stringify(a, null, 2)
        : "no answer in time: the page keeps its own numbers";
    }});
  }});
</script>
</body>
</html>
"""
