"""TCP framing: StreamParser splits a byte stream into messages by Content-Length."""

from __future__ import annotations

import pytest

from gateway.sip.codec import MAX_STREAM_MESSAGE_SIZE, Request, StreamParser
from gateway.sip.errors import SipParseError
from tests.sip.conftest import load


def test_several_messages_in_one_chunk_with_keepalives() -> None:
    stream = load("invite_trunk") + b"\r\n\r\n" + load("options") + b"\r\n" + load("ack")
    messages = StreamParser().feed(stream)
    assert [m.to_bytes() for m in messages] == [load("invite_trunk"), load("options"), load("ack")]


def test_byte_by_byte() -> None:
    parser = StreamParser()
    data = load("invite_trunk") + load("cancel")
    out = [message for i in range(len(data)) for message in parser.feed(data[i : i + 1])]
    assert [m.to_bytes() for m in out] == [load("invite_trunk"), load("cancel")]
    assert parser.buffered == 0


def test_body_waits_for_content_length() -> None:
    parser = StreamParser()
    data = load("invite_trunk")
    assert parser.feed(data[:-10]) == []
    (message,) = parser.feed(data[-10:] + b"\r\n")
    assert isinstance(message, Request)
    assert len(message.body) == 232
    assert parser.buffered == 0  # the trailing CRLF keep-alive was skipped


def test_missing_content_length_means_empty_body() -> None:
    data = load("options").replace(b"Content-Length: 0\r\n", b"")
    (message,) = StreamParser().feed(data)
    assert message.body == b""


def test_oversize_head_and_errors_poison_the_stream() -> None:
    parser = StreamParser()
    with pytest.raises(SipParseError) as info:
        parser.feed(b"X" * (MAX_STREAM_MESSAGE_SIZE + 1))
    assert info.value.status_hint == 513
    with pytest.raises(SipParseError):
        parser.feed(load("options"))  # framing is lost: the connection must close


def test_oversize_declared_body_is_answerable() -> None:
    data = load("options").replace(b"Content-Length: 0", b"Content-Length: 30000")
    with pytest.raises(SipParseError) as info:
        StreamParser(max_message_size=4096).feed(data)
    assert (info.value.status_hint, info.value.can_respond) == (513, True)


def test_bad_content_length_is_answerable() -> None:
    data = load("options").replace(b"Content-Length: 0", b"Content-Length: zero")
    with pytest.raises(SipParseError) as info:
        StreamParser().feed(data)
    assert info.value.can_respond
