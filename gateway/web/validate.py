"""Reading untrusted request bodies and fields into checked values with errors naming the field."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from gateway.web.errors import ApiError

JSON_TYPES = ("application/json", "")  # "" tolerates clients (sendBeacon, curl) that omit it


async def read_json(request: web.Request) -> Any:
    """Parse the JSON body; 415 for a wrong media type, 400 naming the line for bad JSON."""
    ctype = request.content_type if request.headers.get("Content-Type") else ""
    if ctype not in JSON_TYPES and ctype != "text/plain":
        raise ApiError(415, f"expected application/json, got {ctype}", field="Content-Type")
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "body is not valid UTF-8", field="body") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                       field="body") from None


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
