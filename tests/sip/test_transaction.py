"""Server transactions on virtual time: RFC 3261 17.2 timers, matching, CANCEL, 482/483."""

from __future__ import annotations

import pytest

from gateway.sip.codec import Response, StreamParser, parse_message, tag
from gateway.sip.errors import SipParseError
from gateway.sip.transaction import (
    ANSWER_TIMEOUT,
    T2,
    TIMER_H,
    TIMER_I,
    TIMER_J,
    Cancelled,
    Dropped,
    NewInvite,
    NewRequest,
    Output,
    Send,
    TimedOut,
    TransactionLayer,
    TxState,
)
from tests.sip.conftest import TAG, TRUNK, load, run_timers

BRANCH = b"z9hG4bK-524287-1---8f2c1e5a3b9d7c60"


def responses(outputs: list[Output]) -> list[Response]:
    """The responses among `outputs`, parsed; every Send goes back to the trunk."""
    parsed = []
    for out in outputs:
        if isinstance(out, Send):
            assert out.addr == TRUNK
            message = parse_message(out.data)
            assert isinstance(message, Response)
            parsed.append(message)
    return parsed


def statuses(outputs: list[Output]) -> list[int]:
    """Statuses of the responses sent; each Send's `status` agrees with its bytes."""
    parsed = [response.status for response in responses(outputs)]
    assert parsed == [out.status for out in outputs if isinstance(out, Send)]
    return parsed


def invite(layer: TransactionLayer, now: float = 0.0, data: bytes | None = None) -> NewInvite:
    outputs = layer.receive(data or load("invite_trunk"), TRUNK, now)
    assert statuses(outputs) == [100]
    (event,) = [out for out in outputs if isinstance(out, NewInvite)]
    return event


def redirect(layer: TransactionLayer, event: NewInvite, now: float = 0.0) -> bytes:
    contact = [("Contact", "<sip:+18005550100@trunk.example>")]
    (sent,) = layer.respond(event.transaction, event.response(302, extra_headers=contact), now)
    assert isinstance(sent, Send)
    return sent.data


def test_invite_gets_100_at_once_and_reaches_the_app(layer: TransactionLayer) -> None:
    outputs = layer.receive(load("invite_trunk"), TRUNK, 0.0)
    trying, event = outputs
    assert isinstance(trying, Send) and isinstance(event, NewInvite)
    (response,) = responses([trying])
    assert response.status == 100
    assert tag(response.header("to") or "") is None
    assert response.header_values("via") == event.request.header_values("via")
    assert event.transaction.key == (BRANCH.decode(), "198.51.100.20:5060", "INVITE")
    assert event.transaction.call_id == "3c26700e3f1a6b1e0d2c4b7a9f8e5d31@203.0.113.10"


def test_retransmitted_invite_is_answered_again_not_redelivered(layer: TransactionLayer) -> None:
    event = invite(layer)
    assert statuses(layer.receive(load("invite_trunk"), TRUNK, 0.1)) == [100]
    final = redirect(layer, event, 0.2)
    again = layer.receive(load("invite_trunk"), TRUNK, 0.3)
    assert again == [Send(final, TRUNK, 302)]
    assert not any(isinstance(out, NewInvite) for out in again)
    assert layer.stats.retransmitted_requests == 2
    assert tag(responses(again)[0].header("to") or "") == TAG


def test_provisional_from_app_is_resent(layer: TransactionLayer) -> None:
    event = invite(layer)
    layer.respond(event.transaction, event.response(180), 0.1)
    assert statuses(layer.receive(load("invite_trunk"), TRUNK, 0.2)) == [180]


def test_timer_g_doubles_to_t2_until_timer_h(layer: TransactionLayer) -> None:
    event = invite(layer)
    final = redirect(layer, event)
    fired = run_timers(layer, 60.0)
    resent = [at for at, out in fired if isinstance(out, Send)]
    assert all(out.data == final for _, out in fired if isinstance(out, Send))
    intervals = [b - a for a, b in zip([0.0, *resent], resent, strict=False)]
    assert intervals == [0.5, 1.0, 2.0, T2, T2, T2, T2, T2, T2, T2]
    assert fired[-1] == (TIMER_H, TimedOut(event.transaction, "H"))
    assert len(layer) == 0
    assert (layer.stats.timeouts, layer.stats.retransmitted_responses) == (1, 10)
    assert event.transaction.state is TxState.TERMINATED


def test_ack_stops_retransmissions_and_timer_i_absorbs_late_acks(
    layer: TransactionLayer,
) -> None:
    event = invite(layer)
    redirect(layer, event)
    assert [at for at, _ in run_timers(layer, 1.0)] == [0.5]
    assert layer.receive(load("ack"), TRUNK, 1.0) == []
    assert event.transaction.state is TxState.CONFIRMED
    assert layer.receive(load("ack"), TRUNK, 3.0) == []  # absorbed, not stray
    assert layer.receive(load("invite_trunk"), TRUNK, 3.5) == []  # confirmed: absorbed too
    assert run_timers(layer, 1.0 + TIMER_I - 0.01) == []
    assert len(layer) == 1
    assert run_timers(layer, 1.0 + TIMER_I) == []
    assert len(layer) == 0
    assert layer.stats.stray_acks == 0
    assert layer.receive(load("ack"), TRUNK, 7.0) == []
    assert layer.stats.stray_acks == 1
    assert layer.next_deadline() is None


def test_cancel_without_invite_gets_481(layer: TransactionLayer) -> None:
    assert statuses(layer.receive(load("cancel"), TRUNK, 0.0)) == [481]


def test_cancel_pending_invite_gets_200_and_487(layer: TransactionLayer) -> None:
    event = invite(layer)
    outputs = layer.receive(load("cancel"), TRUNK, 0.1)
    ok, terminated = responses(outputs)
    assert (ok.status, ok.header("cseq")) == (200, "102 CANCEL")
    assert (terminated.status, terminated.header("cseq")) == (487, "102 INVITE")
    assert tag(ok.header("to") or "") == tag(terminated.header("to") or "") == TAG
    assert outputs[-1] == Cancelled(event.transaction)
    assert redirect_late(layer, event) == []
    assert layer.stats.late_answers == 1
    assert statuses(layer.receive(load("cancel"), TRUNK, 0.2)) == [200]  # CANCEL resent
    assert layer.receive(load("ack"), TRUNK, 0.3) == []  # the ACK for the 487
    assert not [out for _, out in run_timers(layer, 60.0) if isinstance(out, Send)]


def redirect_late(layer: TransactionLayer, event: NewInvite) -> list[Output]:
    return layer.respond(event.transaction, event.response(302), 0.15)


def test_cancel_after_final_gets_200_only(layer: TransactionLayer) -> None:
    event = invite(layer)
    redirect(layer, event)
    assert statuses(layer.receive(load("cancel"), TRUNK, 0.1)) == [200]
    assert event.transaction.state is TxState.COMPLETED


def test_merged_request_gets_482(layer: TransactionLayer) -> None:
    first = invite(layer)
    forked = load("invite_trunk").replace(BRANCH, b"z9hG4bK-other-path")
    (response,) = responses(layer.receive(forked, TRUNK, 0.1))
    assert response.status == 482
    assert response.header("via") == (
        "SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-other-path;rport"
    )
    assert layer.receive(forked, TRUNK, 0.2) == [Send(response.to_bytes(), TRUNK, 482)]
    assert first.transaction.state is TxState.PROCEEDING


def test_max_forwards_zero_gets_483_except_options(layer: TransactionLayer) -> None:
    spent = load("invite_trunk").replace(b"Max-Forwards: 68", b"Max-Forwards: 0")
    outputs = layer.receive(spent, TRUNK, 0.0)
    assert statuses(outputs) == [483]
    assert not any(isinstance(out, NewInvite) for out in outputs)
    probe = load("options").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    assert isinstance(layer.receive(probe, TRUNK, 0.0)[0], NewRequest)


def test_options_final_is_cached_for_timer_j(layer: TransactionLayer) -> None:
    (event,) = layer.receive(load("options"), TRUNK, 0.0)
    assert isinstance(event, NewRequest)
    allow = [("Allow", "INVITE, ACK, CANCEL, OPTIONS")]
    (sent,) = layer.respond(event.transaction, event.response(200, extra_headers=allow), 0.0)
    assert layer.receive(load("options"), TRUNK, 0.5) == [sent]
    assert run_timers(layer, TIMER_J) == []
    assert len(layer) == 0
    assert isinstance(layer.receive(load("options"), TRUNK, TIMER_J + 1)[0], NewRequest)


def test_unanswered_invite_gets_500(layer: TransactionLayer) -> None:
    event = invite(layer)
    fired = run_timers(layer, ANSWER_TIMEOUT)
    assert statuses([out for _, out in fired]) == [500]
    assert fired[-1][1] == TimedOut(event.transaction, "answer")
    assert layer.stats.unanswered == 1


def test_unanswered_options_is_forgotten(layer: TransactionLayer) -> None:
    (event,) = layer.receive(load("options"), TRUNK, 0.0)
    assert isinstance(event, NewRequest)
    assert [out for _, out in run_timers(layer, 60.0)] == [TimedOut(event.transaction, "answer")]
    assert len(layer) == 0


def test_reliable_transport_has_no_timer_g_and_no_linger(layer: TransactionLayer) -> None:
    outputs = layer.receive(load("invite_trunk"), TRUNK, 0.0, reliable=True)
    event = outputs[1]
    assert isinstance(event, NewInvite)
    redirect(layer, event)
    assert layer.next_deadline() == TIMER_H
    layer.receive(load("ack"), TRUNK, 0.1, reliable=True)
    assert len(layer) == 0


def test_table_full_gets_stateless_503() -> None:
    layer = TransactionLayer(max_transactions=1, tag_factory=lambda: TAG)
    invite(layer)
    assert statuses(layer.receive(load("options"), TRUNK, 0.0)) == [503]
    assert (layer.stats.overloaded, len(layer)) == (1, 1)


def test_abort_pending_answers_everything_waiting(layer: TransactionLayer) -> None:
    invite(layer)
    layer.receive(load("options"), TRUNK, 0.0)
    assert sorted(statuses(layer.abort_pending(1.0))) == [503, 503]
    assert layer.pending() == []


def test_malformed_input(layer: TransactionLayer) -> None:
    bad_cseq = load("options").replace(b"CSeq: 10 OPTIONS", b"CSeq: x OPTIONS")
    assert statuses(layer.receive(bad_cseq, TRUNK, 0.0)) == [400]
    (dropped,) = layer.receive(b"\x16\x03\x01 not sip", TRUNK, 0.0)
    assert isinstance(dropped, Dropped)
    bad_ack = load("ack").replace(b"CSeq: 102 ACK", b"CSeq: 102 BYE")
    assert isinstance(layer.receive(bad_ack, TRUNK, 0.0)[0], Dropped)  # never answer an ACK
    bad_via = load("options").replace(b"SIP/2.0/UDP 198.51.100.30:5060", b"nonsense")
    assert statuses(layer.receive(bad_via, TRUNK, 0.0)) == [400]
    assert layer.receive(load("response_302"), TRUNK, 0.0) == []
    assert layer.receive(b"\r\n\r\n", TRUNK, 0.0) == []
    stats = layer.stats
    assert (stats.malformed, stats.dropped, stats.stray_responses, stats.keepalives) == (
        4,
        2,
        1,
        1,
    )
    assert len(layer) == 0


def test_rfc2543_peer_without_magic_cookie(layer: TransactionLayer) -> None:
    old = load("invite_trunk").replace(BRANCH, b"1234")
    event = invite(layer, data=old)
    assert event.transaction.key[0].startswith("2543 ")
    assert statuses(layer.receive(old, TRUNK, 0.1)) == [100]
    redirect(layer, event)
    assert layer.receive(load("ack").replace(BRANCH, b"1234"), TRUNK, 0.2) == []
    assert event.transaction.state is TxState.CONFIRMED


def test_2xx_enters_accepted_and_absorbs_retransmissions(layer: TransactionLayer) -> None:
    event = invite(layer)
    layer.respond(event.transaction, event.response(200), 0.0)
    assert event.transaction.state is TxState.ACCEPTED
    assert layer.receive(load("invite_trunk"), TRUNK, 0.5) == []
    assert run_timers(layer, 60.0) == []
    assert len(layer) == 0


@pytest.mark.parametrize("now", [0.0, 1e9])
def test_time_origin_does_not_matter(now: float) -> None:
    layer = TransactionLayer(tag_factory=lambda: TAG)
    redirect(layer, invite(layer, now), now)
    assert layer.next_deadline() == now + 0.5


def test_merge_entry_ends_with_its_transaction(layer: TransactionLayer) -> None:
    redirect(layer, invite(layer))
    layer.receive(load("ack"), TRUNK, 0.1)
    run_timers(layer, 10.0)
    assert len(layer) == 0
    again = load("invite_trunk").replace(BRANCH, b"z9hG4bK-later")
    assert statuses(layer.receive(again, TRUNK, 10.0)) == [100]


def test_answer_deadline_is_the_only_timer_while_waiting(layer: TransactionLayer) -> None:
    first = invite(layer, 1.0)
    (second,) = layer.receive(load("options"), TRUNK, 2.0)
    assert isinstance(second, NewRequest)
    assert layer.next_deadline() == 1.0 + ANSWER_TIMEOUT
    assert layer.pending() == [first.transaction, second.transaction]


def test_tcp_path_through_stream_parser(layer: TransactionLayer) -> None:
    parser = StreamParser()
    (message,) = parser.feed(load("options"))
    (event,) = layer.handle(message, TRUNK, 0.0, reliable=True)
    assert isinstance(event, NewRequest)
    assert statuses(layer.respond(event.transaction, event.response(200), 0.0)) == [200]
    assert len(layer) == 0  # reliable: no Timer J
    broken = load("options").replace(b"CSeq: 10 OPTIONS", b"CSeq: 10 INVITE")
    with pytest.raises(SipParseError) as info:
        StreamParser().feed(broken)
    assert statuses(layer.handle_error(info.value, TRUNK)) == [400]


def test_terminated_transaction_releases_its_bytes(layer: TransactionLayer) -> None:
    event = invite(layer)
    redirect(layer, event)
    layer.receive(load("ack"), TRUNK, 0.1)
    run_timers(layer, 10.0)
    assert event.transaction.state is TxState.TERMINATED
    assert event.transaction.request is None
    assert event.transaction.retransmission() == []
