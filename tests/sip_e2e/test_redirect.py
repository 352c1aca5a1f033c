"""The SIP redirect server over real UDP sockets: attribution, 302 contents, transaction
behaviour (retransmissions, Timer G, CANCEL, OPTIONS, 483/404/405/481), allowlist."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import structlog

from gateway import log
from gateway.settings import Settings
from gateway.sip.codec import tag
from gateway.web.keys import STATE
from tests.conftest import DEMO_CONFIG, Gateway, start_gateway
from tests.sip_e2e.conftest import TERMINATION, TRUNK, ack_for, invite, sip_port
from tests.web.test_swap import swap, wait_for


async def recv(peer: Any, timeout: float = 2.0) -> Any:
    return await asyncio.to_thread(peer.recv, timeout)


async def final(peer: Any, timeout: float = 2.0) -> Any:
    return await asyncio.to_thread(peer.recv_final, timeout)


async def final_for(peer: Any, call_id: str, timeout: float = 2.0) -> Any:
    """The next final response for `call_id` (earlier calls' Timer G retransmissions skipped)."""
    while True:
        r = await final(peer, timeout)
        if r is None or r.header("call-id") == call_id:
            return r


async def drain(peer: Any, seconds: float) -> list[Any]:
    got = []
    while (r := await recv(peer, seconds)) is not None:
        got.append(r)
    return got


async def test_invite_to_a_pool_number_is_attributed_and_redirected(
    sip_gateway: Gateway, peer_factory: Any, db_url: str
) -> None:
    v = await swap(sip_gateway)
    peer = peer_factory(sip_port(sip_gateway))
    request = invite(v["number"], call_id="sip-call-1")
    peer.send(request)
    trying = await recv(peer)
    assert trying.status == 100
    redirect = await final(peer)
    assert (redirect.status, redirect.reason) == (302, "Moved Temporarily")
    assert redirect.header("contact") == f"<sip:+18005550100@{TERMINATION}>"
    assert redirect.header("diversion") == (
        f"<sip:{v['number']}@{TERMINATION}>;reason=unconditional;counter=1")
    assert redirect.header("call-id") == "sip-call-1"
    assert redirect.header("via").startswith("SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKtest1")
    assert redirect.header("server") is None and redirect.header("user-agent") is None
    peer.send(ack_for(request, tag(redirect.header("to") or "") or ""))
    assert await wait_for(db_url, "SELECT session FROM calls WHERE id = 'sip-call-1'",
                          v["session"]) == v["session"]
    assert await wait_for(db_url, "SELECT carrier FROM calls WHERE id = 'sip-call-1'",
                          "sip") == "sip"


async def test_a_retransmitted_invite_gets_the_same_answer_and_is_attributed_once(
    sip_gateway: Gateway, peer_factory: Any, db_url: str
) -> None:
    peer = peer_factory(sip_port(sip_gateway))
    request = invite("+14155550199", call_id="sip-retrans")
    peer.send(request)
    first = await final(peer)
    peer.send(request)  # the trunk did not see our 302 and sends the INVITE again
    again = await final(peer)
    assert again.to_bytes() == first.to_bytes()
    # No ACK: Timer G retransmits the 302 after T1 = 500 ms.
    started = time.monotonic()
    timer_g = await final(peer, timeout=2.0)
    assert timer_g is not None and timer_g.to_bytes() == first.to_bytes()
    assert 0.3 < time.monotonic() - started < 1.5
    peer.send(ack_for(request, tag(first.header("to") or "") or ""))
    assert await final(peer, timeout=1.2) is None  # the ACK stopped the retransmissions
    await asyncio.sleep(0.3)
    assert await wait_for(db_url, "SELECT count(*) FROM calls", 1) == 1
    assert sip_gateway.app[STATE].engine.calls_count() == 1


async def test_cancel_after_the_answer_gets_200_only(sip_gateway: Gateway,
                                                     peer_factory: Any) -> None:
    peer = peer_factory(sip_port(sip_gateway))
    request = invite("+14155550199", call_id="sip-cancel", branch="z9hG4bKcancel")
    peer.send(request)
    assert (await final(peer)).status == 302
    cancel = invite("+14155550199", call_id="sip-cancel", branch="z9hG4bKcancel",
                    method="CANCEL")
    peer.send(cancel)
    answer = await final(peer)
    assert (answer.status, answer.header("cseq")) == (200, "1 CANCEL")
    # Only Timer G's 302 retransmissions may follow: never a 487 for an answered INVITE.
    assert {r.status for r in await drain(peer, 0.7)} <= {302}
    unknown = invite("+14155550199", call_id="sip-nothing", branch="z9hG4bKnothing",
                     method="CANCEL")
    peer.send(unknown)
    assert (await final_for(peer, "sip-nothing")).status == 481


async def test_options_and_other_methods(sip_gateway: Gateway, peer_factory: Any) -> None:
    peer = peer_factory(sip_port(sip_gateway))
    peer.send(invite("+14155550199", method="OPTIONS", branch="z9hG4bKopt", call_id="o1"))
    ok = await final_for(peer, "o1")
    assert ok.status == 200 and ok.header("allow") == "INVITE, ACK, CANCEL, OPTIONS"
    peer.send(invite("+14155550199", method="MESSAGE", branch="z9hG4bKmsg", call_id="m1"))
    refused = await final_for(peer, "m1")
    assert refused.status == 405 and "INVITE" in (refused.header("allow") or "")
    peer.send(invite("+14155550199", method="BYE", branch="z9hG4bKbye", call_id="b1"))
    assert (await final_for(peer, "b1")).status == 481


async def test_unknown_number_hops_and_garbage(sip_gateway: Gateway, peer_factory: Any) -> None:
    peer = peer_factory(sip_port(sip_gateway))
    peer.send(invite("+14155550000", branch="z9hG4bKunknown", call_id="u1"))
    assert (await final_for(peer, "u1")).status == 404
    peer.send(invite("alice", branch="z9hG4bKalice", call_id="u2"))
    assert (await final_for(peer, "u2")).status == 404
    peer.send(invite("+14155550199", branch="z9hG4bKhops", call_id="u3", max_forwards=0))
    assert (await final_for(peer, "u3")).status == 483
    peer.send(b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n")
    answers = [r for r in await drain(peer, 0.3) if r.header("call-id") not in ("u1", "u2",
                                                                                 "u3")]
    assert [r.status for r in answers] in ([], [400])  # dropped or 400: never a crash
    peer.send(invite("+14155550199", branch="z9hG4bKafter", call_id="u4"))
    assert (await final_for(peer, "u4")).status == 302  # still serving


async def test_strangers_get_403_whatever_they_ask(sip_gateway: Gateway,
                                                   peer_factory: Any) -> None:
    stranger = peer_factory(sip_port(sip_gateway), source="127.0.0.1")
    answers = []
    for number, branch in (("+14155550199", "z9hG4bKs1"), ("+14155550000", "z9hG4bKs2")):
        stranger.send(invite(number, branch=branch, call_id=branch,
                             local=("127.0.0.1", stranger.local[1])))
        r = await final(stranger)
        answers.append((r.status, r.header("contact"), r.header("diversion")))
    assert answers == [(403, None, None), (403, None, None)]  # known and unknown look alike
    assert sip_gateway.app[STATE].engine.calls_count() == 0


async def test_strangers_can_be_ignored(settings: Settings, peer_factory: Any) -> None:
    gw = await start_gateway(replace(settings, sip_host="127.0.0.1", sip_port=0,
                                     sip_trunks=("127.0.0.2/32",), sip_unknown_policy="drop"))
    try:
        await gw.import_config(DEMO_CONFIG)
        stranger = peer_factory(sip_port(gw), source="127.0.0.1")
        stranger.send(invite("+14155550199", local=("127.0.0.1", stranger.local[1])))
        assert await final(stranger, timeout=0.5) is None
        metrics = await (await gw.client.get("/metrics")).text()
        assert "dni_sip_refused_total 1.0" in metrics
    finally:
        await gw.client.close()


async def test_each_sip_call_is_logged_once_as_attributed(settings: Settings,
                                                          peer_factory: Any) -> None:
    """A retransmission is absorbed by the transaction; a new INVITE for a Call-ID already
    attributed (a trunk's retry: a new transaction, a new CSeq) is answered alike and logged
    apart."""
    log.configure("console", "info")  # the suite runs at warning
    try:
        with structlog.testing.capture_logs() as logs:  # before the server binds its logger
            gw = await start_gateway(replace(
                settings, sip_host="127.0.0.1", sip_port=0, sip_trunks=(f"{TRUNK}/32",),
                sip_termination=TERMINATION))
            try:
                await gw.import_config(DEMO_CONFIG)
                peer = peer_factory(sip_port(gw))
                for branch, cseq in (("z9hG4bKlog1", 1), ("z9hG4bKlog1", 1), ("z9hG4bKlog2", 2)):
                    peer.send(invite("+14155550199", call_id="sip-log", branch=branch,
                                     cseq=cseq))
                    assert (await final_for(peer, "sip-log")).status == 302
            finally:
                await gw.client.close()
    finally:
        log.configure("console", "warning")
    events = [e for e in logs if e["event"] in ("call_attributed", "call_retried")]
    assert [e["event"] for e in events] == ["call_attributed", "call_retried"]
    assert events[0]["call_id"] == "sip-log" and events[0]["carrier"] == "sip"
    assert events[0]["source"] == "Billboard I-80"
