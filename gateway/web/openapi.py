"""The OpenAPI 3.1 document for the public API, served at /v1/openapi.json.

Written by hand next to the routes; `tests/web/test_openapi.py` fails when a route is missing
from it, so it stays true.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import __version__

ERROR = {"$ref": "#/components/schemas/Error"}


def _resp(desc: str, schema: dict[str, Any] | None = None, ctype: str = "application/json") -> (
    dict[str, Any]
):
    out: dict[str, Any] = {"description": desc}
    if schema is not None:
        out["content"] = {ctype: {"schema": schema}}
    return out


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _resp("error", ERROR) for c in codes}


def _op(summary: str, ok: dict[str, Any], *err: int, body: dict[str, Any] | None = None,
        secured: bool = True, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **_errors(*err)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        op["responses"].update(_errors(408))  # the body did not arrive in time (slow client)
    if secured:
        op["security"] = [{"bearer": []}]
    else:
        op["security"] = []
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": type_}}


OBJ = {"type": "object"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object with these required and optional properties (others allowed)."""
    return {"type": "object", "required": list(required),
            "properties": {**required, **(optional or {})}}


STR, INT, NUM, BOOL = ({"type": t} for t in ("string", "integer", "number", "boolean"))
OPT_STR, OPT_INT, OPT_NUM = ({"type": [t, "null"]} for t in ("string", "integer", "number"))
STRS = {"type": "array", "items": STR}
# What the API answers, as `config_to_dict`, the call repository and the handlers build it.
SCHEMAS: dict[str, Any] = {
    "SourceConfig": _obj(
        {"name": STR, "kind": {"enum": ["online", "offline"]}, "forward_to": STR,
         "numbers": STRS, "active": BOOL},
        {"match": {"type": ["object", "array"]}, "idle_timeout": NUM, "overflow": STR,
         "match_window": NUM, "record": BOOL, "ring_timeout": NUM, "overflow_number": STR,
         "whisper": STR, "scoring": STR}),
    "Site": _obj({"key": STR, "name": STR, "swap_targets": STRS, "allowed_origins": STRS,
                  "sources": {"type": "array", "items": _ref("SourceConfig")}},
                 {"active": BOOL, "stickiness_days": NUM}),
    "Source": {"allOf": [_ref("SourceConfig"), _obj({"id": OPT_INT, "site": STR})]},
    "Number": _obj({"number": STR, "site": STR, "source": STR, "source_id": INT,
                    "active": BOOL}),
    "CallRow": _obj({
        "id": STR, "site": STR, "source": STR, "to_number": STR, "caller": OPT_STR,
        "forward_to": STR, "at": NUM, "session": OPT_STR, "visitor": OPT_STR,
        "likelihood": OPT_NUM, "carrier": STR, "status": OPT_STR, "dial_status": OPT_STR,
        "duration": OPT_INT, "recording_url": OPT_STR, "matched_by": STR, "matched_at": OPT_NUM,
        "candidate_count": INT}),
    "SessionView": _obj({
        "session": STR, "visitor": STR, "source": STR, "landing_page": STR,
        "referrer": OPT_STR, "mobile": BOOL, "shared": BOOL, "pageviews": INT,
        "started_at": NUM, "last_activity": NUM, "last_click_to_call": OPT_NUM,
        "utm": OBJ, "click_ids": OBJ}),
    "Call": {"allOf": [_ref("CallRow"), _obj({
        "candidates": {"type": "array", "items": _obj({
            "session": STR, "visitor": STR, "likelihood": NUM,
            "details": {"oneOf": [{"type": "null"}, _ref("SessionView")]}})},
        "history": {"type": "array", "items": _obj({
            "session": OPT_STR, "previous": OPT_STR, "actor": STR, "at": NUM})},
        "attached": {"oneOf": [{"type": "null"}, _ref("SessionView")]},
        "landing_page": OPT_STR, "utm": OBJ, "click_ids": OBJ})]},
    "Match": _obj({"id": STR, "session": STR, "visitor": STR, "likelihood": OPT_NUM,
                   "previous": OPT_STR}),
    "Ready": _obj({"status": {"enum": ["ready", "not_ready"]},
                   "checks": _obj({"engine": BOOL, "database": BOOL, "migrations": BOOL}),
                   "writer_queue": INT}),
    "Report": _obj({"site": OPT_STR, "from": NUM, "to": NUM, "threshold": NUM, "target": NUM,
                    "sources": {"type": "array", "items": _obj(
                        {"site": STR, "source": STR, "kind": {"enum": ["online", "offline"]},
                         "calls": INT})}}),
}
SWAP_REQUEST = {
    "type": "object", "required": ["site", "url"],
    "properties": {"site": {"type": "string"}, "visitor": {"type": ["string", "null"]},
                   "url": {"type": "string"}, "referrer": {"type": ["string", "null"]}},
}
SWAP_RESPONSE = {
    "type": "object",
    "required": ["visitor", "session", "source", "number", "formatted", "replaces"],
    "properties": {"visitor": {"type": ["string", "null"]}, "session": {"type": ["string", "null"]},
                   "source": {"type": ["string", "null"]}, "number": {"type": "string"},
                   "formatted": {"type": "string"},
                   "replaces": {"type": "array", "items": {"type": "string"}}},
}
EVENT = {"type": "object", "required": ["kind"],
         "properties": {"kind": {"enum": ["pageview", "ping", "click_to_call", "hidden"]}}}


def _admin_paths() -> dict[str, Any]:
    site, source, number = _path_param("site"), _path_param("source"), _path_param("number")
    crud_err = (400, 401, 404, 409, 413, 415, 422)
    return {
        "/v1/sites": {
            "get": _op("List sites", {"200": _resp("sites", _obj({"sites": {
                "type": "array", "items": _ref("Site")}}))}, 401),
            "post": _op("Create a site", {"201": _resp("site", _ref("Site"))}, *crud_err,
                        body=OBJ)},
        "/v1/sites/{site}": {
            "parameters": [site],
            "get": _op("Read a site", {"200": _resp("site", _ref("Site"))}, 401, 404),
            "put": _op("Replace a site", {"200": _resp("site", _ref("Site"))}, *crud_err,
                       body=OBJ),
            "patch": _op("Update a site", {"200": _resp("site", _ref("Site"))}, *crud_err,
                         body=OBJ),
            "delete": _op("Delete a site", {"204": _resp("deleted")}, 401, 404)},
        "/v1/sources": {
            "get": _op("List sources", {"200": _resp("sources", _obj({"sources": {
                "type": "array", "items": _ref("Source")}}))}, 401,
                       params=[_query("site")]),
            "post": _op("Create a source", {"201": _resp("source", _ref("Source"))}, *crud_err,
                        body=OBJ)},
        "/v1/sources/{source}": {
            "parameters": [source],
            "get": _op("Read a source", {"200": _resp("source", _ref("Source"))}, 401, 404),
            "put": _op("Replace a source", {"200": _resp("source", _ref("Source"))}, *crud_err,
                       body=OBJ),
            "patch": _op("Update a source", {"200": _resp("source", _ref("Source"))}, *crud_err,
                         body=OBJ),
            "delete": _op("Delete a source", {"204": _resp("deleted")}, 401, 404)},
        "/v1/numbers": {
            "get": _op("List tracking numbers", {"200": _resp("numbers", _obj({"numbers": {
                "type": "array", "items": _ref("Number")}}))}, 401,
                       params=[_query("site"), _query("source")]),
            "post": _op("Add a tracking number", {"201": _resp("number", _ref("Number"))},
                        *crud_err, body=OBJ)},
        "/v1/numbers/{number}": {
            "parameters": [number],
            "get": _op("Read a number", {"200": _resp("number", _ref("Number"))}, 401, 404),
            "patch": _op("Activate or deactivate", {"200": _resp("number", _ref("Number"))},
                         *crud_err, body=OBJ),
            "delete": _op("Delete a number", {"204": _resp("deleted")}, 401, 404)},
        "/v1/import": {
            "post": _op("Import a config document atomically", {"200": _resp(
                "imported", _obj({"imported": STRS, "sites": INT}))}, *crud_err, body=OBJ)},
    }


def _public_paths() -> dict[str, Any]:
    return {
        "/v1/swap": {
            "post": _op("Number for this page view", {"200": _resp("swap", SWAP_RESPONSE)},
                        400, 403, 404, 413, 415, 422, body=SWAP_REQUEST, secured=False),
            "options": _op("CORS preflight", {"204": _resp("preflight")}, secured=False)},
        "/v1/sessions/{session}/events": {
            "parameters": [_path_param("session")],
            "post": _op("Session activity", {"204": _resp("recorded")}, 400, 404, 413, 415,
                        422, body=EVENT, secured=False),
            "options": _op("CORS preflight", {"204": _resp("preflight")}, secured=False)},
        "/healthz": {"get": _op("Liveness", {"200": _resp("up", _obj({"status": {
            "const": "ok"}}))}, secured=False)},
        "/readyz": {"get": _op("Readiness", {"200": _resp("ready", _ref("Ready")),
                                             "503": _resp("not ready", _ref("Ready"))},
                               secured=False)},
        "/metrics": {"get": _op("Prometheus metrics", {"200": _resp("metrics")}, secured=False)},
        "/v1/openapi.json": {"get": _op("This document", {"200": _resp("doc", OBJ)},
                                        secured=False)},
    }


FORM = {"type": "object", "additionalProperties": {"type": "string"}}
TWIML = {"type": "string"}


def _voice_paths() -> dict[str, Any]:
    def twiml_op(summary: str) -> dict[str, Any]:
        op = _op(summary, {"200": _resp("TwiML", TWIML, "application/xml")}, 400, 403, 413, 422,
                 secured=False)
        op["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": FORM}}}
        op["parameters"] = [{"name": "X-Twilio-Signature", "in": "header", "required": True,
                             "schema": {"type": "string"}}]
        return op

    return {
        "/v1/voice/twilio": {"post": twiml_op("Inbound call webhook: attribute and forward")},
        "/v1/voice/twilio/status": {"post": twiml_op("Dial outcome and call status callback")},
        "/v1/voice/twilio/whisper": {"post": twiml_op("Whisper played to the business")},
    }


def _call_paths() -> dict[str, Any]:
    call = _path_param("call")
    return {
        "/v1/calls": {"get": _op("Call log, newest first", {"200": _resp("calls", _obj({
            "calls": {"type": "array", "items": _ref("CallRow")}, "next": OPT_STR}))}, 401, 422,
                                 params=[_query("site"), _query("source"), _query("from"),
                                         _query("to"), _query("min_likelihood", "number"),
                                         _query("max_likelihood", "number"),
                                         _query("cursor"), _query("limit", "integer")])},
        "/v1/calls/{call}": {"parameters": [call],
                             "get": _op("A call with its candidate sessions",
                                        {"200": _resp("call", _ref("Call"))}, 401, 404)},
        "/v1/calls/{call}/match": {
            "parameters": [call],
            "post": _op("Attach another session (override)", {"200": _resp("match",
                                                                            _ref("Match"))},
                        400, 401, 404, 413, 415, 422,
                        body={"type": "object", "required": ["session"],
                              "properties": {"session": {"type": "string"}}})},
    }


def _static_paths() -> dict[str, Any]:
    script = {"200": _resp("the snippet (gzip when accepted; weak ETag)", {"type": "string"},
                           "text/javascript"),
              "304": _resp("not modified (If-None-Match matched the ETag)")}
    return {
        "/swap.js": {"get": _op("Website snippet; `?v=<version>` makes it immutable", script,
                                secured=False, params=[_query("v")])},
        "/swap.{version}.js": {"parameters": [{**_path_param("version"), "schema": {
                                   "type": "string", "pattern": "^[0-9a-f]+$"}}],
                               "get": _op("Website snippet at a versioned, immutable URL",
                                          {**script, "404": _resp("not a hex version", ERROR)},
                                          secured=False)},
        "/demo": {"get": _op("Demo customer page for the demo site",
                             {"200": _resp("page", {"type": "string"}, "text/html")},
                             secured=False)},
    }


def _report_paths() -> dict[str, Any]:
    report = {"200": {"description": "per source: the figures, verdict, change and reason",
                      "content": {"application/json": {"schema": _ref("Report")},
                                  "text/csv": {"schema": {"type": "string"}}}}}
    return {
        "/v1/reports/accuracy": {"get": _op(
            "Accuracy report: more numbers, fewer, or just right, per source", report,
            401, 404, 422, 503,
            params=[_query("site"), _query("from"), _query("to"),
                    _query("threshold", "number"), _query("target", "number"),
                    _query("replay", "boolean"), _query("format")])},
    }


EXTRA_PATHS: list[dict[str, Any]] = []  # later modules (reports, ui) register here
METHODS = ("get", "put", "post", "patch", "delete", "options")


def _every_operation_may_be_refused(paths: dict[str, Any]) -> None:
    """Any route answers 400 when its decoded path or query holds a NUL or invalid UTF-8
    (`validate.check_target`, applied by the middleware before the handler)."""
    bad_target = _resp("NUL or invalid UTF-8 in the path or query", ERROR)
    for item in paths.values():
        for method in METHODS:
            if method in item:
                item[method]["responses"].setdefault("400", bad_target)


def document() -> dict[str, Any]:
    paths = {**_public_paths(), **_admin_paths(), **_voice_paths(), **_call_paths(),
             **_static_paths(), **_report_paths()}
    for extra in EXTRA_PATHS:
        paths.update(extra)
    _every_operation_may_be_refused(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "dni-gateway", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**SCHEMAS, "Error": {
                "type": "object", "required": ["error"],
                "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                   "field": {"type": "string"}}}}}},
        },
    }


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())


def openapi_routes() -> list[web.RouteDef]:
    return [web.get("/v1/openapi.json", serve)]
