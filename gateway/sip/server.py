"""The SIP shell: UDP and TCP listeners driving the sans-IO transaction layer, the source
allowlist and per-source rate limit, and the redirect plan for each INVITE.

Only addresses in DNI_SIP_TRUNKS (loopback when unset) are served; anything else gets 403 or
silence (DNI_SIP_UNKNOWN) whatever it asks, so an unknown peer cannot tell which numbers
exist. Call records go to the injected `persist` (the write-behind spool) before the 302 goes
out. The event loop's clock drives the layer's timers through one rearmed timer handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway import log
from gateway.engine import Engine
from gateway.sip import redirect
from gateway.sip.codec import (
    MAX_STREAM_MESSAGE_SIZE,
    Request,
    StreamParser,
    make_response,
    parse_message,
    storable_text,
)
from gateway.sip.errors import SipError
from gateway.sip.transaction import (
    Address,
    Cancelled,
    Dropped,
    NewInvite,
    NewRequest,
    Output,
    Send,
    TimedOut,
    TransactionLayer,
)

LOOPBACK_TRUNKS = ("127.0.0.0/8", "::1/128")  # safe default: nothing outside the host is served
UNTRUSTED_REPLIES_PER_S = 20  # 403s to strangers per second: no reflection amplifier
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # bursts of thousands of datagrams are not dropped
METHODS_ANSWERED = {"BYE": 481}  # no dialog exists at a redirect server (RFC 3261 15.1.2)

Persist = Callable[[list[Any]], bool]
EngineRef = Callable[[], Engine | None]

_log = log.get("gateway.sip")


@dataclass(slots=True)
class Counters:
    """Plain counters exported as Prometheus metrics by the app."""

    requests: dict[str, int] = field(default_factory=dict)
    responses: dict[int, int] = field(default_factory=dict)
    refused: int = 0  # from a source outside the allowlist
    rate_limited: int = 0
    spool_failures: int = 0


class _Bucket:
    __slots__ = ("last", "tokens")

    def __init__(self, tokens: float, last: float) -> None:
        self.tokens, self.last = tokens, last


class SourceLimiter:
    """Token bucket per source address; bounded memory."""

    MAX_SOURCES = 10_000  # distinct sources remembered; a spray of addresses resets the table

    def __init__(self, per_second: float) -> None:
        self.rate = per_second
        self.burst = max(1.0, per_second)
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, source: str, now: float) -> bool:
        b = self._buckets.get(source)
        if b is None:
            if len(self._buckets) >= self.MAX_SOURCES:
                self._buckets.clear()
            b = self._buckets[source] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.last) * self.rate)
        b.last = now
        if b.tokens < 1.0:
            return False
        b.tokens -= 1.0
        return True


class Allowlist:
    def __init__(self, cidrs: tuple[str, ...]) -> None:
        self.networks = [ipaddress.ip_network(c, strict=False) for c in cidrs or LOOPBACK_TRUNKS]
        self._cache: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        known = self._cache.get(host)
        if known is None:
            try:
                ip = ipaddress.ip_address(host)
                known = any(ip in n for n in self.networks)
            except ValueError:
                known = False
            if len(self._cache) < 10_000:
                self._cache[host] = known
        return known


@dataclass(frozen=True, slots=True)
class SipConfig:
    termination: str | None
    trunks: tuple[str, ...]
    reject_unknown: bool  # 403 to strangers (True) or silence (False)
    history_info: bool
    rate_per_source: int


class SipServer:
    """Owns the transaction layer and the transports; `start`/`stop` from a cleanup_ctx."""

    def __init__(self, config: SipConfig, engine: EngineRef, persist: Persist) -> None:
        self.config = config
        self.engine = engine
        self.persist = persist
        self.layer = TransactionLayer()
        self.allowlist = Allowlist(config.trunks)
        self.limiter = SourceLimiter(config.rate_per_source)
        self.strangers = SourceLimiter(UNTRUSTED_REPLIES_PER_S)
        self.counters = Counters()
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.Server | None = None
        self.streams: dict[Address, asyncio.Transport] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._when: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Bound once, with the logging configuration of the time (a test capturing logs
        # starts the server inside `capture_logs`): every call through the module's lazy
        # logger builds a new bound logger, 5 us per INVITE even when the level drops the line.
        self._log = _log.bind()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        """Listen on UDP and TCP. `reuse_port`: sibling worker processes share the port (the
        kernel spreads datagrams by source address, so a peer's retransmissions reach the
        worker that has its transaction)."""
        loop = self._loop = asyncio.get_running_loop()
        self.udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=(host, port), reuse_port=reuse_port or None)
        sock = self.udp.get_extra_info("socket")
        bound = sock.getsockname()
        for opt in ("SO_RCVBUF", "SO_SNDBUF"):
            _set_buffer(sock, opt)
        self.tcp = await loop.create_server(lambda: _Stream(self), host, bound[1],
                                            reuse_port=reuse_port or None)
        _log.info("sip_listening", host=bound[0], port=bound[1],
                  trunks=list(self.config.trunks or LOOPBACK_TRUNKS))
        return bound[0], bound[1]

    async def stop(self) -> None:
        """Stop taking new connections, answer anything still unanswered with 503 (answers are
        synchronous, so normally nothing), then close the sockets."""
        if self.tcp is not None:
            self.tcp.close()
        self.perform(self.layer.abort_pending(self._now(), 503))
        if self._timer is not None:
            self._timer.cancel()
        if self.udp is not None:
            self.udp.close()
        for t in list(self.streams.values()):
            t.close()

    # -- input -------------------------------------------------------------------------------
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def admit(self, addr: Address, data: bytes) -> bool:
        """Allowlist and rate limit; answers strangers with 403 (or nothing)."""
        host = addr[0]
        now = self._now()
        if not self.allowlist.allows(host):
            self.counters.refused += 1
            if self.config.reject_unknown and self.strangers.allow("*", now):
                self._refuse(data, addr)
            return False
        if not self.limiter.allow(host, now):
            self.counters.rate_limited += 1
            return False
        return True

    def _refuse(self, data: bytes, addr: Address) -> None:
        """403 without a transaction and without looking at what was asked."""
        try:
            message = parse_message(data)
        except SipError:
            return
        if isinstance(message, Request) and message.method != "ACK":
            self.send(make_response(message, 403, to_tag="refused").to_bytes(), addr, 403)

    def datagram(self, data: bytes, addr: Address) -> None:
        if self.admit(addr, data):
            self.perform(self.layer.receive(data, addr, self._now()))

    def stream_message(self, message: Any, addr: Address) -> None:
        self.perform(self.layer.handle(message, addr, self._now(), reliable=True))

    # -- output ------------------------------------------------------------------------------
    def send(self, data: bytes, addr: Address, status: int) -> None:
        self.counters.responses[status] = self.counters.responses.get(status, 0) + 1
        stream = self.streams.get(addr)
        if stream is not None:
            stream.write(data)
        elif self.udp is not None:
            self.udp.sendto(data, addr)

    def perform(self, outputs: list[Output]) -> None:
        for out in outputs:
            kind = type(out)
            if kind is Send:
                self.send(out.data, out.addr, out.status)  # type: ignore[union-attr]
            elif kind is NewInvite:
                self._invite(out)  # type: ignore[arg-type]
            elif kind is NewRequest:
                self._other(out)  # type: ignore[arg-type]
            elif kind is Dropped:
                self._log.debug("sip_dropped", reason=out.reason)  # type: ignore[union-attr]
            elif kind in (Cancelled, TimedOut):
                self._log.info("sip_transaction_ended", event=kind.__name__)
        self._arm()

    def _arm(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline is None or (self._when is not None and self._when <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer, self._when = self._loop.call_at(deadline, self._fire), deadline

    def _fire(self) -> None:
        self._timer = self._when = None
        self.perform(self.layer.on_timer(self._now()))

    # -- the application ---------------------------------------------------------------------
    def _count(self, method: str) -> None:
        self.counters.requests[method] = self.counters.requests.get(method, 0) + 1

    def _invite(self, event: NewInvite) -> None:
        request = event.request
        self._count("INVITE")
        # The Call-ID keys the call record: bytes that are not UTF-8 (which any peer able to
        # spoof a trunk's address can send) are escaped so that Postgres can store it.
        call_id = storable_text(request.header("call-id") or "")
        engine = self.engine()
        if engine is None:
            self.perform(self.layer.respond(event.transaction, event.response(503), self._now()))
            return
        started = time.perf_counter()
        plan = redirect.plan_invite(
            engine, request, call_id=call_id, at=time.time(),
            termination=self.config.termination, source_host=_host_port(event.addr),
            history_info=self.config.history_info)
        if plan.records and not self.persist(list(plan.records)):
            self.counters.spool_failures += 1  # fail open: the call is still forwarded
        if plan.call is not None:
            c = plan.call
            # A new INVITE for a Call-ID already attributed records nothing (the engine
            # answers it from memory): logged apart, so call_attributed is once per call.
            name = "call_attributed" if plan.records else "call_retried"
            self._log.info(name, call_id=call_id, carrier="sip", site=c.site,
                           source=c.source, match=c.match, likelihood=c.likelihood,
                           candidates=len(c.candidates),
                           decision_ms=round((time.perf_counter() - started) * 1000, 3))
        response = event.response(plan.status, extra_headers=plan.headers)
        self.perform(self.layer.respond(event.transaction, response, self._now()))

    def _other(self, event: NewRequest) -> None:
        method = event.request.method
        self._count(method)
        if method == "OPTIONS":
            response = event.response(200, extra_headers=redirect.options_headers())
        elif method in METHODS_ANSWERED:
            response = event.response(METHODS_ANSWERED[method])
        else:
            response = event.response(405, extra_headers=(("Allow", redirect.ALLOW),))
        self.perform(self.layer.respond(event.transaction, response, self._now()))


def _host_port(addr: Address) -> str:
    host = addr[0]
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


def _set_buffer(sock: Any, option: str) -> None:
    # Capped by the kernel (net.core.rmem_max) when too large: the default still works.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, option), SOCKET_BUFFER_BYTES)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.server.datagram(data, addr)


class _Stream(asyncio.Protocol):
    """One TCP connection: Content-Length framing; closed on the first framing error."""

    def __init__(self, server: SipServer) -> None:
        self.server = server
        self.parser = StreamParser(MAX_STREAM_MESSAGE_SIZE)
        self.addr: Address | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.addr = transport.get_extra_info("peername")
        if self.addr is None or not self.server.allowlist.allows(self.addr[0]):
            self.server.counters.refused += 1
            transport.close()
            return
        self.server.streams[self.addr] = transport

    def data_received(self, data: bytes) -> None:
        assert self.addr is not None and self.transport is not None
        if not self.server.limiter.allow(self.addr[0], self.server._now()):
            self.server.counters.rate_limited += 1
            return
        try:
            messages = self.parser.feed(data)
        except SipError:
            self.transport.close()
            return
        for m in messages:
            self.server.stream_message(m, self.addr)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.addr is not None:
            self.server.streams.pop(self.addr, None)
