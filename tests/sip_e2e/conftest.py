"""A gateway with its SIP listener on an ephemeral loopback port, and a raw UDP SIP client."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest

from gateway.settings import Settings
from gateway.sip.codec import Response, parse_message
from gateway.web.keys import STATE
from tests.conftest import DEMO_CONFIG, Gateway, start_gateway

TRUNK = "127.0.0.2"  # the allowlisted trunk address; tests send as strangers from 127.0.0.1
TERMINATION = "trunk.example"


@pytest.fixture
async def sip_gateway(settings: Settings, loop_errors: list[Any]) -> AsyncIterator[Gateway]:
    gw = await start_gateway(replace(settings, sip_host="127.0.0.1", sip_port=0,
                                     sip_trunks=(f"{TRUNK}/32",), sip_termination=TERMINATION))
    await gw.import_config(DEMO_CONFIG)
    yield gw
    await gw.client.close()


def sip_port(gw: Gateway) -> int:
    address = gw.app[STATE].sip_address
    assert address is not None
    return address[1]


class UdpPeer:
    """A blocking UDP socket speaking raw SIP (for exact, timer-aware assertions)."""

    def __init__(self, host: str, port: int, source: str = TRUNK) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(2.0)
        self.target = (host, port)
        self.local = self.sock.getsockname()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def recv(self, timeout: float = 2.0) -> Response | None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        message = parse_message(data)
        assert isinstance(message, Response)
        return message

    def recv_final(self, timeout: float = 2.0) -> Response | None:
        while True:
            r = self.recv(timeout)
            if r is None or r.status >= 200:
                return r

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peer_factory() -> Iterator[Any]:
    peers: list[UdpPeer] = []

    def make(port: int, source: str = TRUNK) -> UdpPeer:
        p = UdpPeer("127.0.0.1", port, source)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.close()


def invite(to: str, *, branch: str = "z9hG4bKtest1", call_id: str = "call-1@test",
           caller: str = "+14155559999", local: tuple[str, int] = (TRUNK, 5060),
           method: str = "INVITE", cseq: int = 1, max_forwards: int = 70,
           extra: str = "") -> bytes:
    host, port = local
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n" \
        b"m=audio 4000 RTP/AVP 0\r\n" if method == "INVITE" else b""
    head = (
        f"{method} sip:{to}@127.0.0.1;user=phone SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"From: <sip:{caller}@{host}>;tag=from-tag-1\r\n"
        f"To: <sip:{to}@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: <sip:{caller}@{host}:{port}>\r\n"
        f"{extra}"
        f"Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def ack_for(request: bytes, to_tag: str) -> bytes:
    """The ACK of a non-2xx final response: same branch, Call-ID, CSeq number, To with tag."""
    text = request.decode().split("\r\n\r\n", 1)[0]
    lines = []
    for line in text.split("\r\n"):
        if line.startswith(("Content-Type", "Content-Length", "Contact")):
            continue
        if line.startswith("INVITE "):
            lines.append("ACK " + line[len("INVITE "):])
        elif line.startswith("To:"):
            lines.append(f"{line};tag={to_tag}")
        elif line.startswith("CSeq:"):
            lines.append(line.replace("INVITE", "ACK"))
        else:
            lines.append(line)
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()
