"""`storable_text`: what the bridge persists from a peer's headers is text Postgres stores."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.engine.records import CallRecord, CandidateRecord
from gateway.sip.codec import parse_message, storable_text
from gateway.store.records import CallUpdate
from gateway.store.spool import decode, encode
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


@pytest.mark.parametrize("call_id", ["a84b4c76e66710@pc33", "caf\u00e9@x", "nul\x00@x",
                                     "bytes\udcff@x"])
def test_the_spool_line_of_a_sip_call_reads_back_as_written(call_id: str) -> None:
    """orjson writes the spool line; text it refuses (a lone surrogate) goes through the
    standard library's encoder instead. Either way one line, read back as it was."""
    call = CallRecord(call_id, "acme", "Google Ads", "+14155550101", "+14155559999",
                      "+18005550100", 1_700_000_000.25, "s_1", "v_1", 0.75,
                      (CandidateRecord("s_1", "v_1", 0.75), CandidateRecord("s_2", "v_2", 0.25)),
                      2)
    mark = CallUpdate(call_id, 1_700_000_000.25, status="redirected", carrier="sip")
    for record in (call, mark):
        line = encode(record)
        assert "\n" not in line and decode(line) == record
