"""`storable_text`: what the bridge persists from a peer's headers is text Postgres stores."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.codec import parse_message, storable_text
from gateway.web.validate import plain  # what Postgres stores as text


@pytest.mark.parametrize(("raw", "stored"), [
    ("a84b4c76e66710@pc33.atlanta.com", "a84b4c76e66710@pc33.atlanta.com"),
    ("bytes\udcff\udcfe@x", "bytes%FF%FE@x"),  # bytes that were not UTF-8, as the parser keeps them
    ("caf\u00e9-\u2603@x", "caf\u00e9-\u2603@x"),  # valid UTF-8 stays as it is
    ("nul\x00@x", "nul%00@x"),
    ("lone\ud800@x", "lone\ufffd@x"),  # not a byte escape: replaced
])
def test_storable_text(raw: str, stored: str) -> None:
    assert storable_text(raw) == stored


def test_a_call_id_that_is_not_utf8_parses_to_surrogates_that_are_escaped() -> None:
    message = parse_message(b"OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                            b"From: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\nCall-ID: c\xff\xc3@h\r\n"
                            b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    call_id = message.header("call-id")
    assert call_id is not None and not plain(call_id)
    assert storable_text(call_id) == "c%FF%C3@h"


@given(st.binary(max_size=40))
def test_any_header_bytes_become_storable_text(raw: bytes) -> None:
    text = raw.decode("utf-8", "surrogateescape")
    stored = storable_text(text)
    assert plain(stored)
    assert (stored == text) == plain(text)  # storable text comes back unchanged
