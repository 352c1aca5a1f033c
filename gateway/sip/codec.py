"""SIP message codec (RFC 3261 sections 7, 18.3, 20, 25): bytes <-> frozen dataclasses.

No sockets, no asyncio, no clock, no transaction state: `parse_message` turns one UDP
datagram into a `Request` or `Response`, `StreamParser` frames messages out of a TCP byte
stream, `make_response` builds the response to a request by the copying rules of section
8.2.6, and `to_bytes()` serialises. `gateway.sip.transaction` sits on top of this module and
`gateway.sip.server` on top of both.

Headers stay an ordered tuple of `(name, value)` exactly as received (name spelling and
compact forms included, value stripped of surrounding blanks, folded lines joined with one
space), so responses copy Via, From, Call-ID and CSeq verbatim and a well-formed CRLF
message serialises back byte for byte. Lookups are case-insensitive, understand the compact
forms, and see a comma-joined Via as separate entries; the index behind them is built once
per message (by the parser, or on first use) and cached in a hidden field, the one thing
besides `body` the parser sets with `object.__setattr__` before handing a message out.
After that a message never changes. The head is decoded as UTF-8 with `surrogateescape`,
so any byte survives a parse/serialise round trip unchanged.

Leniency is deliberate and bounded: bare LF line ends, folded lines, leading CRLFs and
LWS around Via separators are accepted; control characters, lone CRs, bad header names,
duplicate From/To/Call-ID/CSeq/Max-Forwards, a CSeq method that differs from the request's
and unusable Content-Length values are not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from types import MappingProxyType
from typing import Final, NamedTuple, TypeAlias, cast
from urllib.parse import unquote

from gateway.sip.errors import SipEncodeError, SipParseError

SIP_VERSION: Final = "SIP/2.0"

# -- Limits ---------------------------------------------------------------------------------
# The UDP length field's ceiling: no single datagram can be larger than this.
MAX_DATAGRAM_SIZE: Final = 65535
# Over TCP nothing a redirect server needs is bigger than what fits a datagram; this bounds
# the buffer each connection may hold while a message is incomplete.
MAX_STREAM_MESSAGE_SIZE: Final = 65535
# Carrier INVITEs carry 15-40 header fields; 100 leaves room for long proxy chains while
# bounding the work one message can cause.
MAX_HEADERS: Final = 100
# Long Via, Record-Route and Identity lines stay well under 4 KiB; longer lines are abuse.
MAX_LINE_LENGTH: Final = 8192
# SDP offers, even with ICE candidates, and SIP-I multipart bodies stay in the low KiB.
MAX_BODY_SIZE: Final = 32768
# CSeq < 2**31 and lengths < MAX_DATAGRAM_SIZE fit in 10 digits; this bounds int() on
# attacker-chosen digit strings (and keeps clear of Python's int-from-str limit).
_MAX_INT_DIGITS: Final = 10
_MAX_CSEQ: Final = 2**31 - 1  # RFC 3261 section 8.1.1.5

# -- Reason phrases (RFC 3261 section 21, RFC 3265 for 202) ---------------------------------
REASON_PHRASES: Final[Mapping[int, str]] = MappingProxyType(
    {
        100: "Trying",
        180: "Ringing",
        181: "Call Is Being Forwarded",
        182: "Queued",
        183: "Session Progress",
        200: "OK",
        202: "Accepted",
        300: "Multiple Choices",
        301: "Moved Permanently",
        302: "Moved Temporarily",
        305: "Use Proxy",
        380: "Alternative Service",
        400: "Bad Request",
        401: "Unauthorized",
        402: "Payment Required",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        406: "Not Acceptable",
        407: "Proxy Authentication Required",
        408: "Request Timeout",
        410: "Gone",
        413: "Request Entity Too Large",
        414: "Request-URI Too Long",
        415: "Unsupported Media Type",
        416: "Unsupported URI Scheme",
        420: "Bad Extension",
        421: "Extension Required",
        423: "Interval Too Brief",
        480: "Temporarily Unavailable",
        481: "Call/Transaction Does Not Exist",
        482: "Loop Detected",
        483: "Too Many Hops",
        484: "Address Incomplete",
        485: "Ambiguous",
        486: "Busy Here",
        487: "Request Terminated",
        488: "Not Acceptable Here",
        491: "Request Pending",
        493: "Undecipherable",
        500: "Server Internal Error",
        501: "Not Implemented",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Server Time-out",
        505: "Version Not Supported",
        513: "Message Too Large",
        600: "Busy Everywhere",
        603: "Decline",
        604: "Does Not Exist Anywhere",
        606: "Not Acceptable",
    }
)


def reason_phrase(status: int) -> str:
    """The standard phrase for `status`; an unknown code gets its class's x00 phrase (8.1.3.2)."""
    phrase = REASON_PHRASES.get(status)
    if phrase is None:
        phrase = REASON_PHRASES.get(status // 100 * 100, "Unknown")
    return phrase


# -- Header names ----------------------------------------------------------------------------
# Compact forms: RFC 3261 section 7.3.3/20 and the IANA SIP header registry.
COMPACT_FORMS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "a": "accept-contact",
        "b": "referred-by",
        "c": "content-type",
        "d": "request-disposition",
        "e": "content-encoding",
        "f": "from",
        "i": "call-id",
        "j": "reject-contact",
        "k": "supported",
        "l": "content-length",
        "m": "contact",
        "n": "identity-info",
        "o": "event",
        "r": "refer-to",
        "s": "subject",
        "t": "to",
        "u": "allow-events",
        "v": "via",
        "x": "session-expires",
        "y": "identity",
    }
)

# Exact spellings most often seen on the wire, mapped without lower-casing; a fixed table,
# so peers cannot grow it.
_COMMON_NAMES: Final = (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
    "Content-Encoding", "Content-Length", "Content-Type", "CSeq", "Date", "Diversion",
    "Event", "Expires", "From", "History-Info", "Identity", "Max-Forwards", "Min-SE",
    "MIME-Version", "Organization", "P-Asserted-Identity", "P-Charging-Vector",
    "P-Early-Media", "P-Preferred-Identity", "Priority", "Privacy", "Proxy-Authorization",
    "Proxy-Require", "RAck", "Reason", "Record-Route", "Remote-Party-ID", "Require",
    "Retry-After", "Route", "RSeq", "Server", "Session-Expires", "Subject", "Supported",
    "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
)  # fmt: skip


def _spellings() -> dict[str, str]:
    table: dict[str, str] = {}
    for name in _COMMON_NAMES:
        for spelling in (name, name.lower(), name.upper(), name.title()):
            table[spelling] = name.lower()
    for short, long in COMPACT_FORMS.items():
        table[short] = table[short.upper()] = long
    return table


_CANONICAL: Final[Mapping[str, str]] = _spellings()
_canonical_get: Final = _CANONICAL.get
_name_of: Final = itemgetter(0)
_value_of: Final = itemgetter(1)


def canonical_name(name: str) -> str:
    """The lower-case long form of a header name: `canonical_name("v") == "via"`."""
    canon = _canonical_get(name)
    if canon is None:
        low = name.lower()
        canon = COMPACT_FORMS.get(low, low)
    return canon


_TCHARS: Final = r"[A-Za-z0-9.!%*_+`'~-]+"  # RFC 3261 token
_TOKEN_RE: Final = re.compile(_TCHARS)
# Control bytes other than HTAB, CR and LF; deleting them must leave a header section intact.
_CONTROL_BYTES: Final = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_TOKEN_BYTES: Final = b"".join(
    bytes([c]) for c in range(0x80) if _TOKEN_RE.fullmatch(chr(c)) is not None
)
# Methods and header names checked on every message: a set lookup before the regex.
_KNOWN_TOKENS: Final = frozenset(
    {"INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "REGISTER", *_COMMON_NAMES}
)
_MANDATORY: Final = frozenset({"via", "from", "to", "call-id", "cseq"})
_SINGLE: Final = ("from", "to", "call-id", "cseq", "max-forwards")

# What a response copies from its request (8.2.6.2); Timestamp only into a 100 (8.2.6.1).
_ECHOED: Final = frozenset({"via", "from", "to", "call-id", "cseq", "timestamp"})

Headers: TypeAlias = tuple[tuple[str, str], ...]


def _is_token(text: str) -> bool:
    return text in _KNOWN_TOKENS or _TOKEN_RE.fullmatch(text) is not None


def _parse_int(text: str) -> int | None:
    """Non-negative decimal from ASCII digits only (int() would accept other scripts)."""
    if 0 < len(text) <= _MAX_INT_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


class _Index:
    """Lookup aid of one message: the canonical name of each header, and first values."""

    __slots__ = ("_echo", "_first", "_values", "keys")

    def __init__(self, keys: list[str], headers: Sequence[tuple[str, str]]) -> None:
        self.keys = keys
        self._values = headers
        self._first: dict[str, str] | None = None
        self._echo: list[tuple[str, tuple[str, str]]] | None = None

    @classmethod
    def of(cls, headers: Sequence[tuple[str, str]]) -> _Index:
        names: list[str | None] = list(map(_canonical_get, map(_name_of, headers)))
        if None in names:
            names = [
                key or canonical_name(name) for key, (name, _) in zip(names, headers, strict=True)
            ]
        return cls(cast(list[str], names), headers)

    def first(self) -> dict[str, str]:
        """Canonical name -> the value of the first header of that name."""
        first = self._first
        if first is None:
            first = dict(
                zip(reversed(self.keys), map(_value_of, reversed(self._values)), strict=True)
            )
            self._first = first
        return first

    def echo(self) -> list[tuple[str, tuple[str, str]]]:
        """(canonical name, header) of what a response copies, in order; shared by replies."""
        echo = self._echo
        if echo is None:
            pairs = zip(self.keys, self._values, strict=True)
            echo = self._echo = [(key, pair) for key, pair in pairs if key in _ECHOED]
        return echo

    def values(self, key: str) -> list[str]:
        """Every value of canonical name `key`, in message order."""
        return [value for k, (_, value) in zip(self.keys, self._values, strict=True) if k == key]


# -- Messages --------------------------------------------------------------------------------
class _HeaderAccess:
    """Header lookups shared by `Request` and `Response` (case-insensitive, compact-aware)."""

    __slots__ = ()
    headers: Headers
    body: bytes
    _index: _Index | None

    def _idx(self) -> _Index:
        index = self._index
        if index is None:
            index = _Index.of(self.headers)
            object.__setattr__(self, "_index", index)  # a cache, not state: see module doc
        return index

    def header(self, name: str) -> str | None:
        """First value of header `name` (any case, long or compact form), or None.

        For Via that is the first entry of a comma-joined list: the top Via.
        """
        key = canonical_name(name)
        value = self._idx().first().get(key)
        if value is not None and key == "via" and "," in value:
            entries = split_via(value)
            value = entries[0] if entries else value
        return value

    def header_values(self, name: str) -> tuple[str, ...]:
        """Every value of header `name` in message order; Via lists come split."""
        key = canonical_name(name)
        values = self._idx().values(key)
        if key == "via":
            return tuple(entry for value in values for entry in split_via(value))
        return tuple(values)

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Wire form: CRLF line ends, `Name: value`, Content-Length always equal to the body.

        Raises SipEncodeError when a line would carry CR or LF (header injection).
        """
        return _serialise(self._start_line(), self.headers, self._idx().keys, self.body)


@dataclass(frozen=True, slots=True)
class Request(_HeaderAccess):
    """A SIP request as received or built; `headers` keep wire order and spelling."""

    method: str
    uri: str
    version: str
    headers: Headers
    body: bytes = b""
    _index: _Index | None = field(default=None, init=False, repr=False, compare=False)

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"


@dataclass(frozen=True, slots=True)
class Response(_HeaderAccess):
    """A SIP response as received or built; `headers` keep wire order and spelling."""

    status: int
    reason: str
    version: str
    headers: Headers
    body: bytes = b""
    _index: _Index | None = field(default=None, init=False, repr=False, compare=False)

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"


Message: TypeAlias = Request | Response


def _serialise(start_line: str, headers: Headers, keys: list[str], body: bytes) -> bytes:
    """Encode; Content-Length is rewritten in place to the body's length, or appended."""
    lines = [start_line, *map(": ".join, headers)]
    length = str(len(body))
    count = keys.count("content-length")
    if count == 0:
        lines.append(f"Content-Length: {length}")
    elif count == 1:
        at = keys.index("content-length")
        lines[at + 1] = f"{headers[at][0]}: {length}"
    else:
        for at, key in enumerate(keys):
            if key == "content-length":
                lines[at + 1] = f"{headers[at][0]}: {length}"
    head = "\r\n".join(lines)
    breaks = len(lines) - 1
    if head.count("\n") != breaks or head.count("\r") != breaks:
        raise SipEncodeError("CR or LF inside a start line or header")
    return (head + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


# -- Parsing ---------------------------------------------------------------------------------
class _Head(NamedTuple):
    """A parsed header section: the message minus its body, and the first problem seen."""

    message: Message | None  # None when the start line is unreadable
    error: SipParseError | None


def _find_head_end(data: bytes | bytearray, limit: int) -> tuple[int, int] | None:
    """(end of head, start of body) of the first blank line within `limit`, CRLF or bare LF."""
    crlf = data.find(b"\r\n\r\n", 0, limit)
    lf = data.find(b"\n\n", 0, limit if crlf < 0 else crlf)
    if lf >= 0:
        return (lf - 1 if lf and data[lf - 1] == 13 else lf), lf + 2  # "\r\n\n" ends too
    if crlf >= 0:
        return crlf, crlf + 4
    return None


def _decode(head: bytes) -> str:
    """The header section as text with LF line ends; raises on control characters."""
    if len(head.translate(None, _CONTROL_BYTES)) != len(head):  # C speed, unlike a regex scan
        raise SipParseError("control character in the header section")
    text = head.decode("utf-8", "surrogateescape")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise SipParseError("CR without LF in the header section")
    return text


def _all_tokens(names: list[str]) -> bool:
    """Every name a non-empty token; bytes.translate checks them all at C speed."""
    joined = "".join(names)
    return (
        all(names) and joined.isascii() and not joined.encode("ascii").translate(None, _TOKEN_BYTES)
    )


def _fast_header_lines(lines: list[str]) -> list[tuple[str, str]] | None:
    """Every line a plain `token: value` (the common case), else None for the careful path."""
    headers: list[tuple[str, str]] = []
    append = headers.append
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        append((name, value.strip(" \t")))
    if not _all_tokens(list(map(_name_of, headers))):
        return None  # odd names, folded or empty lines: let the careful path say what is wrong
    return headers


def _parse_header_lines(lines: list[str]) -> tuple[list[tuple[str, str]], str | None]:
    """Header lines -> (name, value) pairs, skipping bad lines; also the first problem."""
    headers: list[tuple[str, str]] = []
    problem: str | None = None
    if len(lines) > MAX_HEADERS:
        problem = f"more than {MAX_HEADERS} header lines"
        lines = lines[:MAX_HEADERS]
    for line in lines:
        if not line:
            continue
        if len(line) > MAX_LINE_LENGTH:
            problem = problem or f"header line longer than {MAX_LINE_LENGTH}"
        elif line[0] in " \t":
            if headers:  # obs-fold: a continuation of the previous header's value
                name, value = headers[-1]
                more = line.strip(" \t")
                headers[-1] = (name, f"{value} {more}" if value and more else value or more)
            else:
                problem = problem or "continuation line before any header"
        else:
            name, colon, value = line.partition(":")
            name = name.rstrip(" \t")
            if colon and _is_token(name):
                headers.append((name, value.strip(" \t")))
            else:
                problem = problem or f"malformed header line {line[:40]!r}"
    return headers, problem


def _parse_start_line(line: str, headers: Headers) -> tuple[Message, tuple[int, str] | None]:
    """The start line -> a bodiless message and (status, problem); raises if unreadable."""
    if len(line) > MAX_LINE_LENGTH:
        raise SipParseError(f"start line longer than {MAX_LINE_LENGTH}")
    if line.startswith("SIP/"):
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        status = _parse_int(code)
        if status is None or len(code) != 3 or not 100 <= status <= 699:
            raise SipParseError(f"bad status line {line[:40]!r}")
        return Response(status, reason, version, headers), None
    parts = line.split(" ")
    if len(parts) != 3 or not _is_token(parts[0]) or not parts[2].startswith("SIP/"):
        raise SipParseError(f"bad request line {line[:40]!r}")
    method, uri, version = parts
    request = Request(method, uri, version, headers)
    if version.upper() != SIP_VERSION:
        return request, (505, f"unsupported version {version[:20]!r}")
    scheme, colon, _ = uri.partition(":")
    if not colon or not scheme.isascii() or not scheme.isalpha():
        return request, (400, f"bad Request-URI {uri[:40]!r}")
    return request, None


def _request_problem(request: Request, index: _Index) -> str | None:
    """What is wrong in the headers a transaction relies on, or None."""
    keys = index.keys
    first = index.first()
    if len(first) != len(keys):  # a name repeats (fine for Via and most others)
        for name in _SINGLE:
            if keys.count(name) > 1:
                return f"more than one {name} header"
    try:
        if cseq(first["cseq"])[1] != request.method:
            return "CSeq method differs from the request method"
        hops = first.get("max-forwards")
        if hops is not None:
            max_forwards(hops)
    except SipParseError as exc:
        return exc.message
    return None


def _split_head(text: str) -> tuple[str, list[tuple[str, str]], str | None]:
    """Start line, headers and the first header problem of a decoded header section."""
    start, _, rest = text.partition("\n")
    lines = rest.split("\n") if rest else []
    if len(lines) <= MAX_HEADERS and len(text) <= MAX_LINE_LENGTH:
        headers = _fast_header_lines(lines)
        if headers is not None:
            return start, headers, None
    headers, problem = _parse_header_lines(lines)
    return start, headers, problem


def _parse_head(head: bytes) -> _Head:
    """Parse a header section (no body yet); never raises, returns the problem instead."""
    try:
        start, header_list, problem = _split_head(_decode(head))
        headers = tuple(header_list)
        message, start_problem = _parse_start_line(start, headers)
    except SipParseError as exc:
        return _Head(None, exc)
    index = _Index.of(headers)
    object.__setattr__(message, "_index", index)
    status = 400
    if start_problem is not None:
        status, problem = start_problem
    if isinstance(message, Request):
        if not _MANDATORY.issubset(index.first()):  # nothing to address or copy: no reply
            missing = [name for name in sorted(_MANDATORY) if name not in index.first()]
            return _Head(message, SipParseError(f"missing {', '.join(missing)}"))
        problem = problem or _request_problem(message, index)
    error = None if problem is None else _error(problem, status, message)
    return _Head(message, error)


def _error(problem: str, status: int, message: Message | None) -> SipParseError:
    """An error that carries `message` when it is a request a response can be built for."""
    request = message if isinstance(message, Request) else None
    return SipParseError(problem, status, request)


def _content_length(message: Message) -> int | None:
    """The declared body length, None when absent; raises SipParseError when unusable."""
    index = message._idx()
    value = index.first().get("content-length")
    if value is None:
        return None
    length = _parse_int(value)
    if length is None or (
        index.keys.count("content-length") > 1
        and any(v != value for v in index.values("content-length"))
    ):
        raise _error("bad Content-Length", 400, message)
    if length > MAX_BODY_SIZE:
        raise _error(f"body larger than {MAX_BODY_SIZE}", 513, message)
    return length


def _with_body(message: Message, body: bytes) -> Message:
    """Attach the body to a message only the parser has seen so far."""
    if body:
        object.__setattr__(message, "body", body)
    return message


def parse_message(data: bytes) -> Message:
    """Parse one whole message, as carried by one UDP datagram (RFC 3261 section 18.3).

    Leading CRLFs are skipped, bare LF line ends and folded lines are accepted. Without a
    Content-Length the body runs to the end of the datagram; bytes past Content-Length are
    discarded. Raises `SipParseError` for anything else wrong, with `can_respond` telling
    whether a `status_hint` response can be built from `error.request`.
    """
    if len(data) > MAX_DATAGRAM_SIZE:
        raise SipParseError(f"message larger than {MAX_DATAGRAM_SIZE} bytes", 513)
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    bounds = _find_head_end(data, len(data))
    head_end, body_start = bounds if bounds is not None else (len(data), len(data))
    message, error = _parse_head(data[:head_end])
    if message is None or error is not None:
        raise error or SipParseError("unreadable message")
    length = _content_length(message)
    available = len(data) - body_start
    if length is None:
        if available > MAX_BODY_SIZE:
            raise _error(f"body larger than {MAX_BODY_SIZE}", 513, message)
        length = available
    elif length > available:
        raise _error("body shorter than Content-Length", 400, message)
    return _with_body(message, data[body_start : body_start + length])


class StreamParser:
    """Frames SIP messages out of a byte stream (TCP), by Content-Length (18.3).

    `feed()` takes whatever the socket delivered and returns the messages completed by it,
    in order. CRLFs between messages (keep-alives, RFC 5626) are skipped. A missing
    Content-Length means an empty body. On the first error `feed()` raises
    `SipParseError` and keeps raising: the stream has lost its framing, so the caller
    answers if `can_respond` and closes the connection.
    """

    __slots__ = ("_buffer", "_error", "_max_size", "_pending")

    def __init__(self, max_message_size: int = MAX_STREAM_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_message_size
        self._pending: tuple[Message, int, int] | None = None  # head, body start, length
        self._error: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a message not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Append `data`; return every message it completes. Raises SipParseError."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        messages: list[Message] = []
        try:
            while (message := self._next()) is not None:
                messages.append(message)
        except SipParseError as exc:
            self._error = exc
            self._buffer.clear()
            raise
        return messages

    def _next(self) -> Message | None:
        if self._pending is None:
            self._pending = self._read_head()
            if self._pending is None:
                return None
        message, body_start, length = self._pending
        end = body_start + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[body_start:end])
        del self._buffer[:end]
        self._pending = None
        return _with_body(message, body)

    def _read_head(self) -> tuple[Message, int, int] | None:
        """The next head with its body's position, or None while it is incomplete."""
        buffer = self._buffer
        skip = len(buffer) - len(buffer.lstrip(b"\r\n"))
        if skip:
            del buffer[:skip]
        bounds = _find_head_end(buffer, self._max_size)
        if bounds is None:
            if len(buffer) > self._max_size:
                raise SipParseError(f"header section larger than {self._max_size}", 513)
            return None
        message, error = _parse_head(bytes(buffer[: bounds[0]]))
        if message is None or error is not None:
            raise error or SipParseError("unreadable message")
        length = _content_length(message) or 0
        if bounds[1] + length > self._max_size:
            raise _error(f"message larger than {self._max_size}", 513, message)
        return message, bounds[1], length


# -- Building responses --------------------------------------------------------------------


def _check_header(name: str, value: str) -> tuple[str, str]:
    if not _is_token(name) or "\r" in value or "\n" in value:
        raise SipEncodeError(f"header {name[:40]!r} cannot be sent as given")
    return name, value


def _to_with_tag(value: str, to_tag: str | None, status: int) -> str:
    if tag(value) is not None:
        return value
    if to_tag is None:
        if status == 100:  # 8.2.6.2: a 100 Trying may leave the To tag out
            return value
        raise SipEncodeError(f"a {status} response needs a To tag")
    if not _is_token(to_tag):
        raise SipEncodeError("a To tag must be a token")
    return f"{value};tag={to_tag}"


def _echoed(
    request: Request, status: int, to_tag: str | None
) -> tuple[list[tuple[str, str]], list[str]]:
    """The headers a response copies from `request`, and their canonical names."""
    headers: list[tuple[str, str]] = []
    keys: list[str] = []
    for key, pair in request._idx().echo():
        if key == "to":
            headers.append((pair[0], _to_with_tag(pair[1], to_tag, status)))
        elif key != "timestamp" or status == 100:
            headers.append(pair)
        else:
            continue
        keys.append(key)
    return headers, keys


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None,
    extra_headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """The response to `request` by RFC 3261 section 8.2.6.

    Every Via (in order), From, Call-ID and CSeq are copied verbatim, To too with
    `;tag=to_tag` added when it has no tag yet (pass the same tag for every response to a
    request; only a 100 may go without one); a 100 also echoes Timestamp. Then come
    `extra_headers` in the given order and a Content-Length matching `body`. Raises
    SipEncodeError for a status outside 100-699, a missing tag or an unsendable header.
    """
    if not 100 <= status <= 699:
        raise SipEncodeError(f"status {status} outside 100-699")
    headers, keys = _echoed(request, status, to_tag)
    for name, value in extra_headers:
        headers.append(_check_header(name, value))
        keys.append(canonical_name(name))
    headers.append(("Content-Length", str(len(body))))
    keys.append("content-length")
    phrase = reason_phrase(status) if reason is None else reason
    if "\r" in phrase or "\n" in phrase:
        raise SipEncodeError("CR or LF in a reason phrase")
    response = Response(status, phrase, SIP_VERSION, tuple(headers), body)
    object.__setattr__(response, "_index", _Index(keys, response.headers))
    return response


# -- Header value helpers ------------------------------------------------------------------
def _split_quoted(value: str, separator: str) -> list[str]:
    """Split on `separator` outside double quotes (quoted-pair aware)."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


def split_via(value: str) -> list[str]:
    """A Via value holding several comma-separated via-parms -> one string each."""
    parts = value.split(",") if '"' not in value else _split_quoted(value, ",")
    return [part.strip(" \t") for part in parts if part.strip(" \t")]


def header_param(value: str, name: str) -> str | None:
    """Value of the `;name=value` parameter of a header value (name case-insensitive).

    For name-addr values (`"Bob" <sip:bob@host;x=y>;tag=1`) only the parameters after the
    closing `>` count. A parameter without `=` yields "". None when absent.
    """
    if "<" in value:
        value = value[value.rfind(">") + 1 :]
    params = value.split(";") if '"' not in value else _split_quoted(value, ";")
    for param in params[1:]:
        key, _, val = param.partition("=")
        if key.strip(" \t").lower() == name:
            return val.strip(" \t")
    return None


def tag(value: str) -> str | None:
    """The `tag` parameter of a From or To value, or None."""
    return header_param(value, "tag")


def via_branch(via: str) -> str | None:
    """The `branch` parameter of one Via entry, or None."""
    return header_param(via, "branch")


_SLOW_VIA_RE: Final = re.compile(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+(\S.*)", re.IGNORECASE)


def _via_parts(via: str) -> tuple[str, str]:
    """(transport, sent-by) of one Via entry; raises SipParseError."""
    sent = via.split(";", 1)[0].strip(" \t")
    protocol, _, sent_by = sent.partition(" ")
    sent_by = sent_by.strip(" \t")
    if protocol.count("/") == 2 and sent_by and " " not in sent_by:
        return protocol.rpartition("/")[2], sent_by
    match = _SLOW_VIA_RE.fullmatch(sent)  # LWS around "/" or ":" is legal (25.1 SWS)
    if match is None:
        raise SipParseError(f"malformed Via {via[:40]!r}")
    return match[1], "".join(match[2].split())


class ViaParts(NamedTuple):
    """One Via entry taken apart; host lower-cased, IPv6 kept in brackets."""

    transport: str  # upper case: "UDP", "TCP", "TLS"...
    host: str
    port: int | None  # None when the Via names no port
    branch: str | None


def parse_via(via: str) -> ViaParts:
    """Take one Via entry apart in one pass; raises SipParseError when malformed."""
    transport, sent_by = _via_parts(via)
    if sent_by.startswith("["):
        host, bracket, after = sent_by.partition("]")
        host += bracket
        port_text = after[1:] if after.startswith(":") else after
    else:
        host, _, port_text = sent_by.partition(":")
    port = _parse_int(port_text) if port_text else None
    if not host or (port_text and (port is None or port > 65535)):
        raise SipParseError(f"malformed Via sent-by {sent_by[:40]!r}")
    return ViaParts(transport.upper(), host.lower(), port, header_param(via, "branch"))


def via_transport(via: str) -> str:
    """The upper-case transport of one Via entry ("UDP", "TCP", "TLS"...)."""
    return _via_parts(via)[0].upper()


def via_sent_by(via: str) -> tuple[str, int | None]:
    """(host, port) of one Via entry's sent-by; see `parse_via`. Raises SipParseError."""
    parts = parse_via(via)
    return parts.host, parts.port


def cseq(value: str) -> tuple[int, str]:
    """(sequence number, method) of a CSeq value; raises SipParseError when malformed."""
    parts = value.split()
    number = _parse_int(parts[0]) if len(parts) == 2 else None
    if number is None or number > _MAX_CSEQ or not _is_token(parts[1]):
        raise SipParseError(f"malformed CSeq {value[:40]!r}")
    return number, parts[1]


def max_forwards(value: str) -> int:
    """The Max-Forwards count; raises SipParseError unless it is a plain decimal."""
    hops = _parse_int(value.strip(" \t"))
    if hops is None:
        raise SipParseError(f"malformed Max-Forwards {value[:20]!r}")
    return hops


# What a database cannot store as text: NUL and lone surrogates (the bytes that were not
# UTF-8, kept by `surrogateescape` as U+DC80-U+DCFF).
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
_ESCAPED_BYTES: Final = range(0xDC80, 0xDD00)


def _escape_unstorable(found: re.Match[str]) -> str:
    code = ord(found.group())
    if code in _ESCAPED_BYTES:
        return f"%{code - 0xDC00:02X}"  # the original byte, as a URI would escape it
    return "%00" if code == 0 else "\ufffd"


def storable_text(text: str) -> str:
    """`text` as valid UTF-8 without NUL, for the records the bridge persists (Postgres refuses
    anything else, and one such record would hold back every later one). A byte that was not
    UTF-8 becomes `%XX`, a NUL `%00`: distinct Call-IDs stay distinct. Text that is already
    storable (every real Call-ID) comes back as it is."""
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub(_escape_unstorable, text)


def uri_user(uri: str) -> str | None:
    """The user part of a sip:, sips: or tel: URI, percent-decoded, or None.

    Accepts a bare URI or a name-addr (`"x" <sip:...>`). Password and user parameters
    (`;isub=`, `;phone-context=`...) are dropped: `sip:+14155550101;isub=1@h;user=phone`
    and `tel:+14155550101;phone-context=x` both give "+14155550101". Visual separators of
    a telephone number are kept; normalising the number is the caller's business.
    """
    if "<" in uri:
        uri = uri[uri.find("<") + 1 :].partition(">")[0]
    scheme, colon, rest = uri.strip(" \t").partition(":")
    scheme = scheme.lower()
    if not colon:
        return None
    if scheme == "tel":
        user = rest
    elif scheme in ("sip", "sips"):
        user, at, _ = rest.partition("@")
        if not at:
            return None
        user = user.partition(":")[0]
    else:
        return None
    user = user.partition(";")[0]
    if "%" in user:
        user = unquote(user, errors="surrogateescape")
    return user or None
