"""Property tests: no input makes the codec or the layer raise anything but SipParseError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sip.codec import StreamParser, make_response, parse_message
from gateway.sip.errors import SipParseError
from gateway.sip.transaction import TransactionLayer
from tests.sip.conftest import TRUNK, load

SAMPLES = [load(name) for name in ("invite_trunk", "invite_compact", "options", "ack", "cancel")]
SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
# Bytes that matter to the grammar, so mutations hit the interesting paths.
SPECIAL = st.sampled_from(
    [b"\r\n", b"\n", b"\r", b":", b";", b",", b" ", b"\t", b"<", b">", b'"', b"=", b"\x00",
     b"\xff", b"0", b"99999999999", b"tag=", b"branch=z9hG4bK", b"Content-Length: 5\r\n"]
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A captured message with a few bytes replaced, inserted or deleted."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        piece = draw(st.one_of(SPECIAL, st.binary(min_size=1, max_size=4)))
        if kind == "delete":
            del data[at : at + len(piece)]
        elif kind == "insert":
            data[at:at] = piece
        else:
            data[at : at + len(piece)] = piece
    return bytes(data)


def check_parse(data: bytes) -> None:
    """Parsing gives a message that round-trips, or an error whose reply can be built."""
    try:
        message = parse_message(data)
    except SipParseError as exc:
        error = exc
    else:
        assert parse_message(message.to_bytes()).to_bytes() == message.to_bytes()
        return
    if error.request is not None:
        make_response(error.request, error.status_hint, to_tag="t").to_bytes()


@SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    check_parse(data)


@SETTINGS
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    check_parse(data)


@SETTINGS
@given(st.lists(mutated(), min_size=1, max_size=3), st.integers(1, 64))
def test_stream_parser(messages: list[bytes], chunk: int) -> None:
    feed_stream(messages, chunk)


def feed_stream(messages: list[bytes], chunk: int) -> None:
    """Messages back to back on a stream, fed `chunk` bytes at a time: only SipParseError."""
    data = b"".join(messages)
    parser = StreamParser()
    try:
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
    except SipParseError:
        pass


@SETTINGS
@given(st.lists(mutated(), min_size=1, max_size=5))
def test_layer_never_raises(datagrams: list[bytes]) -> None:
    run_layer(datagrams)


def run_layer(datagrams: list[bytes]) -> None:
    """Datagrams through a transaction layer, then its timers and a shutdown: no exception."""
    layer = TransactionLayer()
    for i, data in enumerate(datagrams):
        layer.receive(data, TRUNK, float(i))
    layer.on_timer(100.0)
    layer.abort_pending(100.0)
