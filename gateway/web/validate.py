"""Reading untrusted request bodies and fields into checked values with errors naming the field."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from gateway.web.errors import ApiError

T = TypeVar("T")

JSON_TYPES = ("application/json", "")  # "" tolerates clients (sendBeacon, curl) that omit it
# The deepest real document (an import: sites > sources > match > list) is 6 levels; the limit
# keeps parsing, validating and re-serialising far from Python's recursion limit.
MAX_JSON_DEPTH = 32
# A request body must arrive within this long once the headers are in: 1 MiB (the default
# DNI_MAX_BODY_BYTES) takes 30 s at 280 kbit/s; a client trickling it slower (a slow-body
# "R.U.D.Y." attack) would otherwise hold a handler for as long as it likes.
BODY_TIMEOUT_S = 30.0
MEDIA_TYPES_CACHED = 64  # distinct Content-Type values remembered: a few per real client kind
_media_types: dict[str, str] = {}


async def read_json(request: web.Request) -> Any:
    """Parse the JSON body; 415 for a wrong media type, 400 naming the line for bad JSON."""
    ctype = media_type(request)
    if ctype not in JSON_TYPES and ctype != "text/plain":
        raise ApiError(415, f"expected application/json, got {ctype}", field="Content-Type")
    raw = await read_body(request)
    try:
        # orjson is several times faster on small bodies; it refuses some JSON the standard
        # parser takes (integers past 64 bits, NaN) and words its errors differently, so on any
        # refusal the standard parser decides, as before.
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = _standard_json(raw)
    storable(doc)
    return doc


def _standard_json(raw: bytes) -> Any:
    """The standard library's parse of a body, 400 naming the line when it is not JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "body is not valid UTF-8", field="body") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                       field="body") from None
    except RecursionError:
        raise ApiError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                       field="body") from None
    return doc


def media_type(request: web.Request) -> str:
    """`request.content_type`, or "" when the header is absent. aiohttp parses the header with
    the email package on every request (~5 us, as much as parsing a swap body), while clients
    send a handful of distinct values: answers are kept per raw value, MEDIA_TYPES_CACHED at
    most, so a client sending a new value each time gains nothing and costs nothing extra."""
    raw = request.headers.get("Content-Type")
    if not raw:
        return ""
    ctype = _media_types.get(raw)
    if ctype is None:
        if len(_media_types) >= MEDIA_TYPES_CACHED:
            _media_types.clear()
        ctype = _media_types[raw] = request.content_type
    return ctype


async def read_body(request: web.Request) -> bytes:
    """The whole body (413 past the app's client_max_size), or 408 when it does not arrive
    within BODY_TIMEOUT_S."""
    if request.content.is_eof():
        # All of it is buffered already (a small body comes with the headers), so nothing can
        # wait; arming a timer per request costs more than parsing the swap body.
        return await request.read()
    return await _within(request.read(), "body")


async def read_form(request: web.Request) -> Any:
    """The posted form (`request.post()`), within BODY_TIMEOUT_S (else 408)."""
    return await _within(request.post(), "form")


async def _within(read: Awaitable[T], what: str) -> T:
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            return await read
    except TimeoutError:
        raise ApiError(408, f"the {what} did not arrive within {BODY_TIMEOUT_S:g} s",
                       field="body") from None


def storable(doc: Any) -> None:
    """Refuse a parsed document (JSON or TOML) that Postgres could not store or that nests too
    deeply: text with NUL characters or unpaired surrogates (JSON's "\\u0000", "\\ud800")
    would fail every later write of the batch it lands in. 422 naming the first such field."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, f"document nested deeper than {MAX_JSON_DEPTH} levels",
                           field="body")
        if isinstance(value, str):
            if not plain(value):
                raise ApiError(422, "text must not contain NUL characters or unpaired "
                               "surrogates", field=where or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not plain(key):
                    raise ApiError(422, "a key contains NUL characters or unpaired surrogates",
                                   field=where or "body")
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def storable_fields(fields: Iterable[tuple[str, str]]) -> None:
    """`storable` for flat name/value pairs (a posted form, whose names repeat): 422 naming
    the first field with a NUL character or an unpaired surrogate."""
    for name, value in fields:
        if not plain(name):
            raise ApiError(422, "a field name contains NUL characters or unpaired surrogates",
                           field="body")
        if not plain(value):
            raise ApiError(422, "text must not contain NUL characters or unpaired surrogates",
                           field=name)


def plain(text: str) -> bool:
    """True for text that PostgreSQL stores as given: no NUL and valid UTF-8 (no lone
    surrogates, which JSON escapes and aiohttp's `surrogateescape` header decoding produce)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_target(request: web.Request) -> None:
    """400 for a request whose decoded path or query holds text Postgres cannot store (a
    percent-encoded NUL): such text reaches SQL filters and lookups from many handlers."""
    if not plain(request.path):
        raise ApiError(400, "the path contains a NUL character or invalid UTF-8", field="path")
    for key, value in request.query.items():
        if not (plain(key) and plain(value)):
            raise ApiError(400, "the query contains a NUL character or invalid UTF-8",
                           field=key if plain(key) else "query")


def digits(raw: str, max_len: int) -> bool:
    """ASCII decimal digits only, at most `max_len` of them (`str.isdigit` also accepts "²",
    which `int()` refuses)."""
    return 0 < len(raw) <= max_len and raw.isascii() and raw.isdigit()


async def read_object(request: web.Request) -> dict[str, Any]:
    doc = await read_json(request)
    if not isinstance(doc, dict):
        raise ApiError(422, "expected a JSON object", field="body")
    return doc


def string(doc: dict[str, Any], name: str, *, required: bool = True, max_len: int = 4096,
           nullable: bool = False) -> str | None:
    value = doc.get(name)
    if value is None:
        if required and not nullable:
            raise ApiError(422, f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{name} must be a string", field=name)
    if len(value) > max_len:
        raise ApiError(422, f"{name} is longer than {max_len} characters", field=name)
    return value


def query_float(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(422, f"{name} must be a number", field=name) from None
    if not math.isfinite(value):
        raise ApiError(422, f"{name} must be finite", field=name)
    return value
