"""Codec tests on captured-style messages (tests/data/sip): parsing, lookups, round trips."""

from __future__ import annotations

import pytest

from gateway.sip.codec import (
    MAX_BODY_SIZE,
    MAX_DATAGRAM_SIZE,
    MAX_HEADERS,
    MAX_LINE_LENGTH,
    REASON_PHRASES,
    Request,
    Response,
    canonical_name,
    cseq,
    header_param,
    make_response,
    max_forwards,
    parse_message,
    reason_phrase,
    tag,
    uri_user,
    via_branch,
    via_sent_by,
    via_transport,
)
from gateway.sip.errors import SipEncodeError, SipParseError
from tests.sip.conftest import load

ALL = ["invite_trunk", "invite_compact", "options", "ack", "cancel", "response_302"]


def request(name: str) -> Request:
    message = parse_message(load(name))
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize("name", ALL)
def test_round_trip_is_byte_exact(name: str) -> None:
    data = load(name)
    assert parse_message(data).to_bytes() == data


def test_trunk_invite_fields() -> None:
    invite = request("invite_trunk")
    assert invite.method == "INVITE"
    assert invite.uri == "sip:+14155550101@gw.acme.test:5060;user=phone"
    assert invite.version == "SIP/2.0"
    assert [branch for branch in map(via_branch, invite.header_values("Via"))] == [
        "z9hG4bK-524287-1---8f2c1e5a3b9d7c60",
        "z9hG4bKac1846719857",
        "z9hG4bK3f1d.6a1b2c3d4e5f.0",
    ]
    assert invite.header("call-id") == "3c26700e3f1a6b1e0d2c4b7a9f8e5d31@203.0.113.10"
    assert invite.header("DIVERSION") == (
        "<sip:+18005550100@203.0.113.10;user=phone>;reason=unconditional;counter=1;privacy=off"
    )
    assert uri_user(invite.header("Diversion") or "") == "+18005550100"
    pai = invite.header("p-asserted-identity") or ""
    assert uri_user(pai) == "+14155559999"
    assert "verstat=TN-Validation-Passed" in pai
    assert invite.body.startswith(b"v=0\r\n")
    assert int(invite.header("Content-Length") or "") == len(invite.body) == 232


def test_compact_forms_and_comma_joined_via() -> None:
    invite = request("invite_compact")
    assert invite.header("Via") == "SIP/2.0/UDP 198.51.100.21:5070;branch=z9hG4bKnashds8"
    assert invite.header_values("via")[1] == (
        "SIP/2.0/UDP 192.0.2.56;branch=z9hG4bK.c0mpact;received=192.0.2.56"
    )
    assert tag(invite.header("From") or "") == "1928301774"
    assert invite.header("to") == "<tel:+14155550102>"
    assert invite.header("Call-ID") == "a84b4c76e66710@pc33.atlanta.example"
    assert invite.header("contact") == "<sip:+14155558888@198.51.100.21:5070>"
    assert invite.header("content-type") == "application/sdp"
    assert invite.header("supported") == "timer"
    assert invite.header("subject") == "tracking test"
    assert uri_user(invite.uri) == "+14155550102"
    assert invite.headers[0][0] == "v"  # spelling kept for verbatim copies


@pytest.mark.parametrize(
    ("short", "long"),
    [("v", "via"), ("F", "from"), ("t", "to"), ("i", "call-id"), ("m", "contact"),
     ("l", "content-length"), ("c", "content-type"), ("k", "supported"),
     ("e", "content-encoding"), ("s", "subject"), ("o", "event"), ("CSEQ", "cseq")],
)  # fmt: skip
def test_canonical_names(short: str, long: str) -> None:
    assert canonical_name(short) == long


def test_response_parses() -> None:
    response = parse_message(load("response_302"))
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (302, "Moved Temporarily")
    assert uri_user(response.header("contact") or "") == "+18005550100"


def test_bare_lf_leading_crlf_and_folding_are_tolerated() -> None:
    data = load("options").replace(b"\r\n", b"\n")
    data = data.replace(b"CSeq: 10 OPTIONS", b"Subject: first\n\t second\nCSeq: 10 OPTIONS")
    message = parse_message(b"\r\n\r\n" + data)
    assert message.header("subject") == "first second"
    assert message.to_bytes().startswith(b"OPTIONS sip:gw.acme.test:5060 SIP/2.0\r\nVia: ")


def test_udp_body_rules() -> None:
    data = load("options")
    assert parse_message(data + b"trailing junk").body == b""  # past Content-Length: dropped
    without_length = data.replace(b"Content-Length: 0\r\n", b"")
    assert parse_message(without_length + b"body").body == b"body"  # runs to datagram end
    assert parse_message(without_length).to_bytes().endswith(b"Content-Length: 0\r\n\r\n")


def test_serialise_fixes_content_length() -> None:
    message = request("options")
    changed = Request(message.method, message.uri, message.version, message.headers, b"abc")
    assert b"\r\nContent-Length: 3\r\n\r\nabc" in changed.to_bytes()


def test_non_utf8_bytes_survive_round_trip() -> None:
    data = load("options").replace(b"<sip:dispatcher", b'"\xff\xfeOK" <sip:dispatcher')
    assert parse_message(data).to_bytes() == data


# -- helpers ---------------------------------------------------------------------------------
def test_via_helpers() -> None:
    via = "SIP/2.0/TCP [2001:DB8::1]:5061;branch=z9hG4bK77;rport"
    assert via_sent_by(via) == ("[2001:db8::1]", 5061)
    assert via_transport(via) == "TCP"
    assert via_sent_by("SIP/2.0/UDP GW.example;branch=z9hG4bK1") == ("gw.example", None)
    assert via_sent_by("SIP / 2.0 / UDP host.example : 5070 ;branch=x") == ("host.example", 5070)
    assert via_branch("SIP/2.0/UDP h ; Branch = z9hG4bKsp ;rport") == "z9hG4bKsp"
    assert via_branch("SIP/2.0/UDP h;rport") is None
    with pytest.raises(SipParseError):
        via_sent_by("garbage")
    with pytest.raises(SipParseError):
        via_sent_by("SIP/2.0/UDP host:99999")


def test_tag_and_params() -> None:
    assert tag('"A;tag=no" <sip:a@h;tag=inside>;tag=outside') == "outside"
    assert tag("sip:a@h;tag=addrspec") == "addrspec"
    assert tag("<sip:a@h;tag=inside>") is None
    assert header_param("<sip:x@h>;reason=unconditional;counter=1", "counter") == "1"
    assert header_param("<sip:x@h>;lr", "lr") == ""


@pytest.mark.parametrize(
    ("uri", "user"),
    [
        ("sip:+14155550101@gw;user=phone", "+14155550101"),
        ("sips:alice:secret@example.com", "alice"),
        ("sip:+14155550101;isub=12@gw;user=phone", "+14155550101"),
        ("sip:%2B14155550101@gw", "+14155550101"),
        ("tel:+14155550101;phone-context=+1", "+14155550101"),
        ('"Caller" <sip:+14155559999@h>;tag=1', "+14155559999"),
        ("sip:gw.example", None),
        ("mailto:a@b", None),
        ("nonsense", None),
    ],
)
def test_uri_user(uri: str, user: str | None) -> None:
    assert uri_user(uri) == user


def test_cseq_and_max_forwards() -> None:
    assert cseq("102 INVITE") == (102, "INVITE")
    assert cseq(" 7\tACK ") == (7, "ACK")
    assert max_forwards(" 70 ") == 70
    for bad in ("", "INVITE", "1 2 3", "-1 INVITE", "99999999999 INVITE", "١ INVITE"):
        with pytest.raises(SipParseError):
            cseq(bad)
    with pytest.raises(SipParseError):
        max_forwards("seventy")


# -- errors ----------------------------------------------------------------------------------
def test_garbage_and_empty_are_unanswerable() -> None:
    for data in (b"", b"\r\n\r\n", b"hello world", b"\x00\x01\x02", b"GET / HTTP/1.1\r\n\r\n"):
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert not info.value.can_respond


def test_oversize_datagram() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(load("options") + b"x" * MAX_DATAGRAM_SIZE)
    assert info.value.status_hint == 513


def test_oversize_body_is_answerable() -> None:
    data = load("options").replace(b"Content-Length: 0", f"l: {MAX_BODY_SIZE + 1}".encode())
    with pytest.raises(SipParseError) as info:
        parse_message(data + b"x" * (MAX_BODY_SIZE + 1))
    assert (info.value.status_hint, info.value.can_respond) == (513, True)


def test_too_many_headers() -> None:
    extra = b"".join(b"X-Filler-%d: x\r\n" % i for i in range(MAX_HEADERS))
    data = load("options").replace(b"Content-Length", extra + b"Content-Length")
    with pytest.raises(SipParseError, match="more than 100") as info:
        parse_message(data)
    assert info.value.can_respond  # Via, From, To, Call-ID, CSeq came first


def test_overlong_line() -> None:
    data = load("options").replace(b"Max-Forwards: 70", b"X-Long: " + b"a" * MAX_LINE_LENGTH)
    with pytest.raises(SipParseError, match="longer than"):
        parse_message(data)


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1e3", b"99999999999999999999999", b"5"])
def test_bad_content_length(value: bytes) -> None:
    data = load("options").replace(b"Content-Length: 0", b"Content-Length: " + value)
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.can_respond
    assert info.value.status_hint == 400


@pytest.mark.parametrize("header", [b"Via", b"From", b"To", b"Call-ID", b"CSeq"])
def test_missing_mandatory_header_is_unanswerable(header: bytes) -> None:
    lines = [line for line in load("options").split(b"\r\n") if not line.startswith(header + b":")]
    with pytest.raises(SipParseError, match="missing") as info:
        parse_message(b"\r\n".join(lines))
    assert not info.value.can_respond


@pytest.mark.parametrize(
    ("old", "new", "status"),
    [
        (b"CSeq: 10 OPTIONS", b"CSeq: 10 INVITE", 400),
        (b"CSeq: 10 OPTIONS", b"CSeq: ten OPTIONS", 400),
        (b"Max-Forwards: 70", b"Max-Forwards: many", 400),
        (b"Max-Forwards: 70", b"Bad Header Line", 400),
        (b"Call-ID: ", b"Call-ID: dup\r\nCall-ID: ", 400),
        (b"SIP/2.0\r\n", b"SIP/3.0\r\n", 505),
        (b"sip:gw.acme.test:5060 ", b"gw.acme.test ", 400),
    ],
)
def test_answerable_errors(old: bytes, new: bytes, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(load("options").replace(old, new, 1))
    assert info.value.status_hint == status
    assert info.value.request is not None
    assert info.value.request.header("call-id") is not None


def test_control_characters_are_refused() -> None:
    with pytest.raises(SipParseError, match="control"):
        parse_message(load("options").replace(b"CSeq: 10", b"CSeq:\x00 10"))


# -- make_response ---------------------------------------------------------------------------
def test_make_response_copies_by_the_rules() -> None:
    invite = request("invite_trunk")
    contact = ("Contact", "<sip:+18005550100@trunk.example>")
    response = make_response(invite, 302, to_tag="7d3f0a9c21b4e865", extra_headers=[contact])
    data = response.to_bytes()
    expected_head = [
        b"SIP/2.0 302 Moved Temporarily",
        *[line for line in load("invite_trunk").split(b"\r\n") if line.startswith(b"Via: ")],
        b'From: "WIRELESS CALLER" <sip:+14155559999@203.0.113.10;user=phone>;tag=as5d4e3f2a',
        b"To: <sip:+14155550101@gw.acme.test;user=phone>;tag=7d3f0a9c21b4e865",
        b"Call-ID: 3c26700e3f1a6b1e0d2c4b7a9f8e5d31@203.0.113.10",
        b"CSeq: 102 INVITE",
        b"Contact: <sip:+18005550100@trunk.example>",
        b"Content-Length: 0",
    ]
    assert data == b"\r\n".join(expected_head) + b"\r\n\r\n"
    assert parse_message(data) == response
    assert b"Server" not in data and b"User-Agent" not in data


def test_make_response_compact_request() -> None:
    response = make_response(request("invite_compact"), 404, to_tag="x1")
    assert response.headers[0] == ("v", request("invite_compact").headers[0][1])
    assert response.header("to") == "<tel:+14155550102>;tag=x1"
    assert response.reason == "Not Found"


def test_make_response_tag_rules() -> None:
    invite = request("invite_trunk")
    trying = make_response(invite, 100, to_tag=None)
    assert tag(trying.header("to") or "") is None
    with pytest.raises(SipEncodeError):
        make_response(invite, 302, to_tag=None)
    ack = request("ack")  # To already tagged: kept as is
    assert make_response(ack, 200, to_tag="other").header("to") == ack.header("to")


def test_make_response_echoes_timestamp_in_100_only() -> None:
    data = load("options").replace(b"Max-Forwards", b"Timestamp: 54\r\nMax-Forwards")
    options = request_from(data)
    assert make_response(options, 100, to_tag=None).header("timestamp") == "54"
    assert make_response(options, 200, to_tag="t").header("timestamp") is None


def request_from(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 99},
        {"status": 700},
        {"status": 200, "extra_headers": [("X-Evil", "a\r\nVia: injected")]},
        {"status": 200, "extra_headers": [("Bad Name", "v")]},
        {"status": 200, "reason": "OK\r\nX: y"},
    ],
)
def test_make_response_refuses_unsendable(kwargs: dict[str, object]) -> None:
    with pytest.raises(SipEncodeError):
        make_response(request("options"), to_tag="t", **kwargs)  # type: ignore[arg-type]


def test_reason_phrases() -> None:
    assert REASON_PHRASES[481] == "Call/Transaction Does Not Exist"
    assert reason_phrase(487) == "Request Terminated"
    assert reason_phrase(499) == "Bad Request"  # unknown codes read as their x00 (8.1.3.2)
    assert make_response(request("options"), 200, "Alive", to_tag="t").reason == "Alive"
