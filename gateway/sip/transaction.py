"""SIP server transactions (RFC 3261 section 17.2, RFC 6026), without I/O or a clock.

`TransactionLayer` sits between the socket shell (`gateway.sip.server`) and the application
(attribution and the 302). The shell hands it what arrived, with the current time (any
monotonic clock, e.g. `loop.time()`), and gets back a list of outputs to perform in order:
`Send` (response bytes, status, address) and events for the application (`NewInvite`,
`NewRequest`, `Cancelled`, `TimedOut`, `Dropped`). The application answers an event, at once
or later, with `layer.respond(event.transaction, event.response(302, ...), now)`. The shell
calls `on_timer(now)` whenever `next_deadline()` is reached. To shut down: stop reading,
`abort_pending(now)`, then keep driving timers until `len(layer) == 0` or a bound passes.

What the layer does on its own: match retransmissions and ACKs to transactions (17.2.3),
resend the last response to a retransmitted request without asking the application again,
send 100 Trying at once for an INVITE, retransmit a 3xx-6xx on Timer G until the ACK, give
up on Timer H, absorb late ACKs until Timer I, keep a non-INVITE final response for Timer J,
answer CANCEL (481, 200, or 200 plus 487 to the INVITE), merged requests (482) and
Max-Forwards 0 (483), answer parse errors (400/505/513) when a reply can be built, and
refuse new transactions with 503 when the table is full.

Responses go back to the address the request came from (symmetric signalling, as RFC 3581
rport does): trunks send from their signalling port, and this is what NAT needs.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias

from gateway.sip.codec import (
    Message,
    Request,
    Response,
    cseq,
    make_response,
    max_forwards,
    parse_message,
    parse_via,
    tag,
)
from gateway.sip.errors import SipParseError

# -- Timers (RFC 3261 section 17.1.1.1 and table 4) ------------------------------------------
T1: Final = 0.5  # round-trip time estimate
T2: Final = 4.0  # cap on the retransmission interval of INVITE responses
T4: Final = 5.0  # how long a message may linger in the network
TIMER_H: Final = 64 * T1  # wait for the ACK to a 3xx-6xx
TIMER_I: Final = T4  # absorb ACK retransmissions (unreliable transports; 0 on TCP)
TIMER_J: Final = 64 * T1  # absorb non-INVITE retransmissions (unreliable; 0 on TCP)
TIMER_L: Final = 64 * T1  # RFC 6026 Accepted state: absorb INVITE retransmissions after 2xx
# The peer's own Timer B/F (64*T1) has expired by then; an INVITE still unanswered gets a 500
# so it does not ring forever, a non-INVITE is forgotten.
ANSWER_TIMEOUT: Final = 64 * T1

# At the 4,000 INVITE/s target ~20,000 transactions are alive (Timer I, 5 s), measured at
# ~1.7 KB each once answered; 100,000 is 5x that, caps memory near 170 MB and stops a flood
# or a peer that never ACKs (Timer H, 32 s) from exhausting it.
MAX_TRANSACTIONS: Final = 100_000

MAGIC_COOKIE: Final = "z9hG4bK"  # RFC 3261 branch prefix: the branch is unique (8.1.1.7)
_DEFAULT_PORTS: Final = {"TLS": 5061, "WSS": 443, "WS": 80}  # else 5060 (RFC 3261 19.1.2)

# An address as asyncio gives it: (host, port) for IPv4, (host, port, flow, scope) for IPv6.
Address: TypeAlias = tuple[Any, ...]
TransactionKey: TypeAlias = tuple[str, str, str]  # branch, sent-by, method (17.2.3)
_MergeKey: TypeAlias = tuple[str, str, int, str]  # From tag, Call-ID, CSeq number, method


class TxState(enum.Enum):
    """Server transaction states of RFC 3261 figures 7 and 8, plus RFC 6026 Accepted."""

    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


@dataclass(slots=True)
class SipStats:
    """Plain counters; the server exports them as Prometheus metrics."""

    requests: int = 0  # requests handled, ACKs and retransmissions included
    retransmitted_requests: int = 0  # a peer's retransmission absorbed or answered again
    retransmitted_responses: int = 0  # responses sent again (Timer G or for a retransmission)
    timeouts: int = 0  # Timer H fired: no ACK for a final response
    unanswered: int = 0  # the application did not answer within ANSWER_TIMEOUT
    malformed: int = 0  # parse errors, answered or not
    dropped: int = 0  # malformed and unanswerable, so dropped
    stray_acks: int = 0  # ACKs matching no transaction (e.g. for a 2xx or a stateless reply)
    stray_responses: int = 0  # responses received: a redirect server sends no requests
    overloaded: int = 0  # 503 sent because MAX_TRANSACTIONS were alive
    late_answers: int = 0  # respond() on a transaction already answered or gone
    keepalives: int = 0  # CRLF keep-alive datagrams ignored
    terminated: int = 0  # transactions removed from the table


# -- Outputs -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Send `data`, a response with status `status`, to `addr` (over the request's transport).

    A retransmission is an equal `Send` again (the same bytes).
    """

    data: bytes
    addr: Address
    status: int


@dataclass(frozen=True, slots=True)
class _RequestEvent:
    transaction: ServerTransaction
    request: Request
    addr: Address

    def response(
        self,
        status: int,
        reason: str | None = None,
        *,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """`make_response` with this transaction's To tag (the same for every response)."""
        return make_response(
            self.request,
            status,
            reason,
            to_tag=self.transaction.to_tag,
            extra_headers=extra_headers,
        )


@dataclass(frozen=True, slots=True)
class NewInvite(_RequestEvent):
    """A new INVITE (100 Trying already sent): answer it with `layer.respond`."""


@dataclass(frozen=True, slots=True)
class NewRequest(_RequestEvent):
    """A new non-INVITE request other than ACK and CANCEL (OPTIONS, BYE, REGISTER...)."""


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A CANCEL ended this INVITE with 487; a later `respond` to it is ignored."""

    transaction: ServerTransaction


@dataclass(frozen=True, slots=True)
class TimedOut:
    """`timer` "H": no ACK came for the final response; "answer": the app never answered."""

    transaction: ServerTransaction
    timer: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """A message was dropped without a reply (malformed beyond answering)."""

    addr: Address
    reason: str


Output: TypeAlias = Send | NewInvite | NewRequest | Cancelled | TimedOut | Dropped


# -- Transactions --------------------------------------------------------------------------
def _random_tag() -> str:
    """A To tag with 64 random bits (RFC 3261 19.3 asks for at least 32)."""
    return secrets.token_hex(8)


class ServerTransaction:
    """One server transaction; an opaque handle for the application, state for the layer.

    `deadline` is when the layer must call `fire()` next (inf when no retransmission or
    linger timer runs); `answer_by` is when `expire()` answers for a silent application.
    The request is kept only until the final response, which is kept to resend.
    """

    __slots__ = (
        "_last",
        "_last_status",
        "_stats",
        "addr",
        "answer_by",
        "deadline",
        "key",
        "merge_key",
        "queued",
        "reliable",
        "request",
        "state",
        "to_tag",
    )
    is_invite: ClassVar[bool] = False
    initial_state: ClassVar[TxState] = TxState.TRYING

    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        addr: Address,
        to_tag: str,
        stats: SipStats,
        *,
        reliable: bool,
        now: float,
    ) -> None:
        self.key = key
        self.request: Request | None = request
        self.addr = addr
        self.to_tag = to_tag
        self.reliable = reliable
        self.state = self.initial_state
        self.answer_by = now + ANSWER_TIMEOUT
        self.deadline = float("inf")
        self.merge_key: _MergeKey | None = None
        self.queued = float("inf")  # the deadline the layer's timer heap holds for it
        # The latest response, for retransmissions: its bytes and status rather than the Send
        # itself, one object fewer for the collector to walk per live transaction.
        self._last: bytes | None = None
        self._last_status = 0
        self._stats = stats

    @property
    def call_id(self) -> str | None:
        """The Call-ID while the request is held (until the final response), for logs."""
        return None if self.request is None else self.request.header("call-id")

    @property
    def waiting(self) -> bool:
        """True until the final response went out."""
        return self.state in (TxState.TRYING, TxState.PROCEEDING)

    def _send(self, response: Response) -> list[Output]:
        self._last = data = response.to_bytes()
        self._last_status = status = response.status
        return [Send(data, self.addr, status)]

    def _resend(self) -> list[Output]:
        if self._last is None:
            return []
        self._stats.retransmitted_responses += 1
        return [Send(self._last, self.addr, self._last_status)]

    def _terminate(self) -> None:
        self.state = TxState.TERMINATED
        self.deadline = float("inf")
        self.request = None

    def release(self) -> None:
        """Drop what a terminated transaction no longer needs (a stale timer may hold it)."""
        self.request = None
        self._last = None

    def retransmission(self) -> list[Output]:
        """The peer sent the request again: resend the last response, if any (17.2.1-2)."""
        self._stats.retransmitted_requests += 1
        if self.state in (TxState.PROCEEDING, TxState.COMPLETED):
            return self._resend()
        return []

    def respond(self, response: Response, now: float) -> list[Output]:
        """Send the application's `response`; ignored (and counted) once a final went out."""
        raise NotImplementedError

    def fire(self, now: float) -> list[Output]:
        """`deadline` passed: retransmit, time out or terminate."""
        raise NotImplementedError

    def expire(self, now: float) -> list[Output]:
        """`answer_by` passed with no final response from the application."""
        raise NotImplementedError


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 figure 7, with RFC 6026's Accepted state after a 2xx."""

    __slots__ = ("_end_at", "_g_at", "_g_interval")
    is_invite = True
    initial_state = TxState.PROCEEDING

    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        addr: Address,
        to_tag: str,
        stats: SipStats,
        *,
        reliable: bool,
        now: float,
    ) -> None:
        super().__init__(key, request, addr, to_tag, stats, reliable=reliable, now=now)
        self._g_interval = T1
        self._g_at = self._end_at = float("inf")

    def trying(self) -> list[Output]:
        """Send 100 Trying (without a To tag, 8.2.6.2); it is resent for retransmissions."""
        assert self.request is not None  # a new transaction holds its request
        return self._send(make_response(self.request, 100, to_tag=None))

    def respond(self, response: Response, now: float) -> list[Output]:
        if self.state is not TxState.PROCEEDING:
            self._stats.late_answers += 1
            return []
        outputs = self._send(response)
        if response.status >= 200:
            self._finish(response.status, now)
        return outputs

    def _finish(self, status: int, now: float) -> None:
        self.request = None
        if status < 300:  # the application retransmits its own 2xx (13.3.1.4)
            self.state = TxState.ACCEPTED
            self.deadline = now + TIMER_L
            return
        self.state = TxState.COMPLETED
        self._end_at = now + TIMER_H
        if not self.reliable:
            self._g_at = now + T1
        self.deadline = min(self._g_at, self._end_at)

    def ack(self, now: float) -> None:
        """The ACK for our 3xx-6xx: stop Timer G, linger for Timer I; else absorb it."""
        if self.state is not TxState.COMPLETED:
            return
        if self.reliable:
            self._terminate()
        else:
            self.state = TxState.CONFIRMED
            self.deadline = now + TIMER_I

    def retransmission(self) -> list[Output]:
        if self.state is TxState.ACCEPTED:  # RFC 6026: absorbed, the 2xx is the app's job
            self._stats.retransmitted_requests += 1
            return []
        return super().retransmission()

    def fire(self, now: float) -> list[Output]:
        if self.state is not TxState.COMPLETED:  # Timer I or L: done
            self._terminate()
            return []
        if now >= self._end_at:  # Timer H
            self._stats.timeouts += 1
            self._terminate()
            return [TimedOut(self, "H")]
        return self._timer_g(now)

    def _timer_g(self, now: float) -> list[Output]:
        self._g_interval = min(2 * self._g_interval, T2)
        self._g_at += self._g_interval
        if self._g_at <= now:  # the loop stalled: do not fire a burst to catch up
            self._g_at = now + self._g_interval
        self.deadline = min(self._g_at, self._end_at)
        return self._resend()

    def expire(self, now: float) -> list[Output]:
        """Answer 500 so the call does not ring on forever."""
        if self.request is None:
            return []
        self._stats.unanswered += 1
        response = make_response(self.request, 500, to_tag=self.to_tag)
        return [*self.respond(response, now), TimedOut(self, "answer")]


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 figure 8."""

    __slots__ = ()

    def respond(self, response: Response, now: float) -> list[Output]:
        if not self.waiting:
            self._stats.late_answers += 1
            return []
        outputs = self._send(response)
        if response.status < 200:
            self.state = TxState.PROCEEDING
        elif self.reliable:
            self._terminate()
        else:
            self.state = TxState.COMPLETED
            self.request = None
            self.deadline = now + TIMER_J
        return outputs

    def fire(self, now: float) -> list[Output]:
        self._terminate()  # Timer J
        return []

    def expire(self, now: float) -> list[Output]:
        """Forget it: the peer's Timer F has long expired, nobody waits for an answer."""
        self._terminate()
        self._stats.unanswered += 1
        return [TimedOut(self, "answer")]


# -- Matching ------------------------------------------------------------------------------
def transaction_key(request: Request) -> TransactionKey:
    """The RFC 3261 17.2.3 key; an ACK maps to its INVITE's key. Raises SipParseError.

    With the magic cookie the branch identifies the transaction; for an RFC 2543 peer the
    Request-URI, From tag, Call-ID, CSeq number and the top Via stand in for it (the To tag
    is left out, so the ACK, which carries ours, still matches).
    """
    via = request.header("via")
    if via is None:
        raise SipParseError("no Via")
    transport, host, port, branch = parse_via(via)
    if port is None:
        port = _DEFAULT_PORTS.get(transport, 5060)
    method = "INVITE" if request.method == "ACK" else request.method
    if branch is None or not branch.startswith(MAGIC_COOKIE):
        branch = _rfc2543_id(request, via)
    return branch, f"{host}:{port}", method


def _rfc2543_id(request: Request, via: str) -> str:
    from_tag = tag(request.header("from") or "") or ""
    number = cseq(request.header("cseq") or "")[0]
    return f"2543 {request.uri} {from_tag} {request.header('call-id')} {number} {via}"


def _merge_key(request: Request) -> _MergeKey | None:
    """From tag, Call-ID and CSeq of a request outside a dialog (no To tag), else None."""
    if tag(request.header("to") or "") is not None:
        return None
    from_tag = tag(request.header("from") or "") or ""
    number, method = cseq(request.header("cseq") or "")
    return from_tag, request.header("call-id") or "", number, method


# -- The layer -----------------------------------------------------------------------------
class TransactionLayer:
    """All server transactions of one listening endpoint; see the module docstring.

    Every method takes `now` (seconds, any monotonic origin) and returns outputs in the
    order they must be performed. Nothing here raises on peer input.
    """

    def __init__(
        self,
        *,
        max_transactions: int = MAX_TRANSACTIONS,
        tag_factory: Callable[[], str] = _random_tag,
    ) -> None:
        self.stats = SipStats()
        self._max = max_transactions
        self._new_tag = tag_factory
        self._transactions: dict[TransactionKey, ServerTransaction] = {}
        self._merge: dict[_MergeKey, TransactionKey] = {}
        self._timers: list[tuple[float, int, ServerTransaction]] = []  # heap, lazily cancelled
        self._seq = itertools.count()
        # Transactions waiting for the application, oldest first: answer_by grows with
        # creation, and an answer removes the entry at once (no stale 32 s timers).
        self._unanswered: OrderedDict[ServerTransaction, None] = OrderedDict()

    def __len__(self) -> int:
        """Live transactions."""
        return len(self._transactions)

    def pending(self) -> list[ServerTransaction]:
        """Transactions still waiting for the application's final answer, oldest first."""
        return list(self._unanswered)

    # -- input --
    def receive(
        self, data: bytes, addr: Address, now: float, *, reliable: bool = False
    ) -> list[Output]:
        """One datagram from `addr`: parse it and `handle` it (or answer the parse error)."""
        if len(data) <= 4 and not data.strip(b"\r\n"):
            self.stats.keepalives += 1
            return []
        try:
            message = parse_message(data)
        except SipParseError as exc:
            return self.handle_error(exc, addr)
        return self.handle(message, addr, now, reliable=reliable)

    def handle_error(self, error: SipParseError, addr: Address) -> list[Output]:
        """A message that did not parse: a stateless `status_hint` reply, or a drop."""
        self.stats.malformed += 1
        request = error.request
        if request is None or request.method == "ACK":
            self.stats.dropped += 1
            return [Dropped(addr, error.message)]
        response = make_response(request, error.status_hint, to_tag=self._new_tag())
        return [Send(response.to_bytes(), addr, response.status)]

    def handle(
        self, message: Message, addr: Address, now: float, *, reliable: bool = False
    ) -> list[Output]:
        """A parsed message from `addr` (from `receive` or a TCP `StreamParser`)."""
        if isinstance(message, Response):
            self.stats.stray_responses += 1
            return []
        try:
            return self._route(message, addr, now, reliable)
        except SipParseError as exc:  # parse_message validated these; a hand-built one may not be
            return self.handle_error(SipParseError(exc.message, 400, message), addr)

    def _route(self, request: Request, addr: Address, now: float, reliable: bool) -> list[Output]:
        key = transaction_key(request)
        self.stats.requests += 1
        tx = self._transactions.get(key)
        if tx is not None:
            return self._existing(tx, request, now)
        if request.method == "ACK":
            self.stats.stray_acks += 1
            return []
        return self._new(request, key, addr, now, reliable)

    def _existing(self, tx: ServerTransaction, request: Request, now: float) -> list[Output]:
        if request.method != "ACK":
            return tx.retransmission()
        if isinstance(tx, InviteServerTransaction):
            tx.ack(now)
            self._reschedule(tx)
        return []

    def _new(
        self, request: Request, key: TransactionKey, addr: Address, now: float, reliable: bool
    ) -> list[Output]:
        if len(self._transactions) >= self._max:
            self.stats.overloaded += 1
            response = make_response(request, 503, to_tag=self._new_tag())
            return [Send(response.to_bytes(), addr, 503)]
        if request.method == "CANCEL":
            return self._cancel(request, key, addr, now, reliable)
        merge_key = _merge_key(request)
        status = self._refusal(request, merge_key)
        tx = self._start(request, key, addr, now, reliable)
        if status is not None:
            return self.respond(tx, make_response(request, status, to_tag=tx.to_tag), now)
        if merge_key is not None:
            tx.merge_key = merge_key
            self._merge[merge_key] = key
        if isinstance(tx, InviteServerTransaction):
            return [*tx.trying(), NewInvite(tx, request, addr)]
        return [NewRequest(tx, request, addr)]

    def _refusal(self, request: Request, merge_key: _MergeKey | None) -> int | None:
        """483 for Max-Forwards 0 (OPTIONS excepted, 16.3), 482 for a merged request."""
        hops = request.header("max-forwards")
        if hops is not None and max_forwards(hops) == 0 and request.method != "OPTIONS":
            return 483
        if merge_key is not None and merge_key in self._merge:
            return 482
        return None

    def _start(
        self, request: Request, key: TransactionKey, addr: Address, now: float, reliable: bool
    ) -> ServerTransaction:
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        tx = cls(key, request, addr, self._new_tag(), self.stats, reliable=reliable, now=now)
        self._transactions[key] = tx
        self._unanswered[tx] = None
        return tx

    def _cancel(
        self, request: Request, key: TransactionKey, addr: Address, now: float, reliable: bool
    ) -> list[Output]:
        """9.2: 481 without the INVITE; 200, plus 487 while the INVITE is unanswered."""
        invite = self._transactions.get((key[0], key[1], "INVITE"))
        cancel = self._start(request, key, addr, now, reliable)
        if invite is None:
            return self.respond(cancel, make_response(request, 481, to_tag=cancel.to_tag), now)
        outputs = self.respond(cancel, make_response(request, 200, to_tag=invite.to_tag), now)
        if invite.state is TxState.PROCEEDING and invite.request is not None:
            terminated = make_response(invite.request, 487, to_tag=invite.to_tag)
            outputs += [*self.respond(invite, terminated, now), Cancelled(invite)]
        return outputs

    # -- application --
    def respond(
        self, transaction: ServerTransaction, response: Response, now: float
    ) -> list[Output]:
        """Send the application's `response` in `transaction` (from a NewInvite/NewRequest).

        Provisional responses may precede the final one; after the final response, or
        once the transaction ended (cancelled, timed out), the call is ignored and counted
        in `stats.late_answers`.
        """
        outputs = transaction.respond(response, now)
        if not transaction.waiting:
            self._unanswered.pop(transaction, None)
        self._reschedule(transaction)
        return outputs

    def abort_pending(self, now: float, status: int = 503) -> list[Output]:
        """Answer every transaction still waiting for the application (graceful shutdown)."""
        outputs: list[Output] = []
        for tx in self.pending():
            if tx.request is not None:
                response = make_response(tx.request, status, to_tag=tx.to_tag)
                outputs += self.respond(tx, response, now)
        return outputs

    # -- time --
    def next_deadline(self) -> float | None:
        """When `on_timer` must next be called, or None when no timer runs."""
        timers = self._timers
        while timers and _stale(timers[0]):
            heapq.heappop(timers)
        deadline = timers[0][0] if timers else float("inf")
        if self._unanswered:
            deadline = min(deadline, next(iter(self._unanswered)).answer_by)
        return None if deadline == float("inf") else deadline

    def on_timer(self, now: float) -> list[Output]:
        """Fire every timer due at `now`; returns retransmissions and timeout events."""
        outputs: list[Output] = []
        unanswered = self._unanswered
        while unanswered and (tx := next(iter(unanswered))).answer_by <= now:
            del unanswered[tx]
            outputs += tx.expire(now)
            self._reschedule(tx)
        timers = self._timers
        while timers and timers[0][0] <= now:
            entry = heapq.heappop(timers)
            if not _stale(entry):
                tx = entry[2]
                outputs += tx.fire(now)
                self._reschedule(tx)
        return outputs

    def _reschedule(self, tx: ServerTransaction) -> None:
        """Queue `tx`'s deadline if it changed, or remove `tx` once terminated."""
        if tx.state is TxState.TERMINATED:
            self._remove(tx)
        elif tx.deadline != tx.queued:
            tx.queued = tx.deadline
            if tx.deadline != float("inf"):
                heapq.heappush(self._timers, (tx.deadline, next(self._seq), tx))

    def _remove(self, tx: ServerTransaction) -> None:
        if self._transactions.get(tx.key) is tx:
            del self._transactions[tx.key]
            self.stats.terminated += 1
        if tx.merge_key is not None and self._merge.get(tx.merge_key) == tx.key:
            del self._merge[tx.merge_key]
        self._unanswered.pop(tx, None)
        tx.release()


def _stale(entry: tuple[float, int, ServerTransaction]) -> bool:
    """A heap entry superseded by a later deadline (timers are cancelled lazily)."""
    tx = entry[2]
    return tx.deadline != entry[0] or tx.state is TxState.TERMINATED
