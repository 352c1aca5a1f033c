"""Administration API: sites, sources and numbers (bearer API key), and bulk import.

Every change goes through `_commit`: one transaction under the configuration lock, the stored
configuration re-validated by the engine's parser before commit (all or nothing), then the live
engine reconfigured. Inputs are normalised by the same parser, so numbers are E.164 everywhere.
"""

from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from gateway.engine.config import config_to_dict, parse_config
from gateway.engine.errors import ConfigError
from gateway.engine.phones import parse_e164
from gateway.store import config_repo
from gateway.store.config_repo import Conflict
from gateway.web import validate
from gateway.web.auth import require_admin
from gateway.web.errors import ApiError
from gateway.web.keys import STATE

Change = Callable[[asyncpg.Connection], Awaitable[None]]


def _pool(request: web.Request) -> asyncpg.Pool:
    pool = request.app[STATE].pool
    if pool is None:
        raise ApiError(503, "database not ready")
    return pool


async def _commit(request: web.Request, change: Change) -> dict[str, Any]:
    state = request.app[STATE]
    try:
        async with state.config_lock, _pool(request).acquire() as conn:
            async with conn.transaction():
                await config_repo.lock(conn)
                await change(conn)
                config = await config_repo.validate_stored(conn)
                if state.follower is not None:  # scale-out: no reload when it reads the change
                    state.config_epoch = await conn.fetchval("SELECT epoch FROM config_epoch")
            state.reconfigure(config)
            return config
    except Conflict as exc:
        raise ApiError(409, exc.message, field=exc.field) from None
    except asyncpg.UniqueViolationError as exc:
        raise ApiError(409, f"already exists: {exc.detail or exc}") from None


def _normalise_site(doc: dict[str, Any]) -> dict[str, Any]:
    """Validate one site document alone and return it normalised (E.164 numbers...)."""
    try:
        return dict(config_to_dict(parse_config({"sites": [doc]}))["sites"][0])
    except ConfigError as exc:
        field = exc.field.removeprefix("sites[0].").removeprefix("sites[0]")
        raise ConfigError(field or "body", exc.message) from None


async def _site_doc(request: web.Request, key: str) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        config = await config_repo.load_config(conn)
    for site in config["sites"]:
        if site["key"] == key:
            return dict(site)
    raise ApiError(404, f"no site {key!r}", field="site")


def _find(config: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in config["sites"] if s["key"] == key)


# --- sites -----------------------------------------------------------------------------------

async def list_sites(request: web.Request) -> web.Response:
    require_admin(request)
    async with _pool(request).acquire() as conn:
        config = await config_repo.load_config(conn)
    return web.json_response({"sites": config["sites"]})


async def create_site(request: web.Request) -> web.Response:
    require_admin(request)
    doc = _normalise_site(await validate.read_object(request))

    async def change(conn: asyncpg.Connection) -> None:
        if await conn.fetchval("SELECT 1 FROM sites WHERE key = $1", doc["key"]):
            raise Conflict("key", f"site {doc['key']!r} already exists")
        await config_repo.replace_site(conn, doc, "body")

    config = await _commit(request, change)
    return web.json_response(_find(config, doc["key"]), status=201)


async def get_site(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response(await _site_doc(request, request.match_info["site"]))


async def update_site(request: web.Request) -> web.Response:
    """PUT replaces the whole site (sources included when given); PATCH merges top-level keys."""
    require_admin(request)
    key = request.match_info["site"]
    current = await _site_doc(request, key)
    given = await validate.read_object(request)
    if "key" in given and given["key"] != key:
        raise ApiError(422, "a site's key cannot be changed", field="key")
    merged = {**current, **given} if request.method == "PATCH" else {"key": key, **given}
    if request.method == "PUT" and "sources" not in given:
        merged["sources"] = current["sources"]
    doc = _normalise_site(merged)
    config = await _commit(request, lambda conn: config_repo.replace_site(conn, doc, "body"))
    return web.json_response(_find(config, key))


async def delete_site(request: web.Request) -> web.Response:
    require_admin(request)
    key = request.match_info["site"]

    async def change(conn: asyncpg.Connection) -> None:
        if not await config_repo.delete_site(conn, key):
            raise ApiError(404, f"no site {key!r}", field="site")

    await _commit(request, change)
    return web.Response(status=204)


# --- sources ---------------------------------------------------------------------------------

def _source_out(site: str, source: dict[str, Any], ids: dict[tuple[str, str], int]) -> dict[
    str, Any
]:
    return {"id": ids.get((site, source["name"])), "site": site, **source}


async def list_sources(request: web.Request) -> web.Response:
    require_admin(request)
    only = request.query.get("site")
    async with _pool(request).acquire() as conn:
        config = await config_repo.load_config(conn)
        ids = await config_repo.source_ids(conn)
    out = [_source_out(site["key"], src, ids) for site in config["sites"]
           if only in (None, site["key"]) for src in site["sources"]]
    return web.json_response({"sources": out})


async def _source_ref(request: web.Request) -> tuple[int, str, str]:
    raw = request.match_info["source"]
    if not validate.digits(raw, 18):  # 18 digits always fit a bigint
        raise ApiError(404, f"no source {raw!r}", field="source")
    async with _pool(request).acquire() as conn:
        found = await config_repo.source_by_id(conn, int(raw))
    if found is None:
        raise ApiError(404, f"no source {raw!r}", field="source")
    return int(raw), found[0], found[1]


async def _write_sources(request: web.Request, site: dict[str, Any],
                         before: Change | None = None) -> dict[str, Any]:
    doc = _normalise_site(site)

    async def change(conn: asyncpg.Connection) -> None:
        if before is not None:
            await before(conn)
        await config_repo.replace_site(conn, doc, "body")

    return await _commit(request, change)


async def _respond_source(request: web.Request, config: dict[str, Any], site: str, name: str,
                          status: int = 200) -> web.Response:
    async with _pool(request).acquire() as conn:
        ids = await config_repo.source_ids(conn)
    source = next(s for s in _find(config, site)["sources"] if s["name"] == name)
    return web.json_response(_source_out(site, source, ids), status=status)


async def create_source(request: web.Request) -> web.Response:
    require_admin(request)
    given = await validate.read_object(request)
    site_key = validate.string(given, "site", max_len=64)
    assert site_key is not None
    site = await _site_doc(request, site_key)
    source = {k: v for k, v in given.items() if k != "site"}
    if any(s["name"] == source.get("name") for s in site["sources"]):
        raise ApiError(409, f"source {source.get('name')!r} already exists", field="name")
    site["sources"] = [*site["sources"], source]
    config = await _write_sources(request, site)
    return await _respond_source(request, config, site_key, str(source["name"]), 201)


async def get_source(request: web.Request) -> web.Response:
    require_admin(request)
    _, site_key, name = await _source_ref(request)
    async with _pool(request).acquire() as conn:
        config = await config_repo.load_config(conn)
    return await _respond_source(request, config, site_key, name)


async def update_source(request: web.Request) -> web.Response:
    require_admin(request)
    source_id, site_key, name = await _source_ref(request)
    given = await validate.read_object(request)
    if "site" in given and given["site"] != site_key:
        raise ApiError(422, "a source cannot move to another site", field="site")
    given.pop("site", None)
    site = await _site_doc(request, site_key)
    current = next(s for s in site["sources"] if s["name"] == name)
    updated = {**current, **given} if request.method == "PATCH" else {"name": name, **given}
    new_name = str(updated.get("name", name))
    if new_name != name and any(s["name"] == new_name for s in site["sources"]):
        raise ApiError(409, f"source {new_name!r} already exists", field="name")
    site["sources"] = [updated if s["name"] == name else s for s in site["sources"]]

    async def rename(conn: asyncpg.Connection) -> None:
        if new_name != name:
            await config_repo.rename_source(conn, source_id, new_name)

    config = await _write_sources(request, site, rename)
    return await _respond_source(request, config, site_key, new_name)


async def delete_source(request: web.Request) -> web.Response:
    require_admin(request)
    _, site_key, name = await _source_ref(request)
    site = await _site_doc(request, site_key)
    site["sources"] = [s for s in site["sources"] if s["name"] != name]
    await _write_sources(request, site)
    return web.Response(status=204)


# --- numbers ---------------------------------------------------------------------------------

def _number_out(row: asyncpg.Record) -> dict[str, Any]:
    return {"number": row["e164"], "site": row["site"], "source": row["source"],
            "source_id": row["source_id"], "active": row["active"]}


async def _number_row(request: web.Request) -> asyncpg.Record:
    raw = request.match_info["number"]
    async with _pool(request).acquire() as conn:
        row = await config_repo.number_owner(conn, raw.strip())
    if row is None:
        raise ApiError(404, f"no tracking number {raw!r}", field="number")
    return row


async def list_numbers(request: web.Request) -> web.Response:
    require_admin(request)
    async with _pool(request).acquire() as conn:
        rows = await config_repo.list_numbers(conn, request.query.get("site"),
                                              request.query.get("source"))
    return web.json_response({"numbers": [_number_out(r) for r in rows]})


async def create_number(request: web.Request) -> web.Response:
    require_admin(request)
    given = await validate.read_object(request)
    site_key = validate.string(given, "site", max_len=64)
    source_name = validate.string(given, "source", max_len=200)
    raw = validate.string(given, "number", max_len=64)
    assert site_key is not None and raw is not None
    site = await _site_doc(request, site_key)
    source = next((s for s in site["sources"] if s["name"] == source_name), None)
    if source is None:
        raise ApiError(404, f"no source {source_name!r} on site {site_key!r}", field="source")
    e164 = _normalise_number(raw)
    async with _pool(request).acquire() as conn:
        if await config_repo.number_owner(conn, e164) is not None:
            raise ApiError(409, f"{e164} is already a tracking number", field="number")
    source["numbers"] = [*source["numbers"], e164]
    await _write_sources(request, site)
    async with _pool(request).acquire() as conn:
        row = await config_repo.number_owner(conn, e164)
    return web.json_response(_number_out(row), status=201)


def _normalise_number(raw: str) -> str:
    e164 = parse_e164(raw)
    if e164 is None:
        raise ApiError(422, f"{raw[:64]!r} is not a valid phone number", field="number")
    return e164


async def get_number(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response(_number_out(await _number_row(request)))


async def update_number(request: web.Request) -> web.Response:
    """PATCH {"active": bool}: a deactivated number is rejected at call time and never shown."""
    require_admin(request)
    row = await _number_row(request)
    given = await validate.read_object(request)
    active = given.get("active")
    if not isinstance(active, bool):
        raise ApiError(422, "active must be true or false", field="active")
    await _commit(request, lambda conn: config_repo.set_number_active(conn, row["e164"], active))
    return web.json_response(_number_out(await _number_row(request)))


async def delete_number(request: web.Request) -> web.Response:
    require_admin(request)
    row = await _number_row(request)

    async def change(conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM numbers WHERE e164 = $1", row["e164"])

    await _commit(request, change)
    return web.Response(status=204)


# --- import ----------------------------------------------------------------------------------

async def _read_config_document(request: web.Request) -> dict[str, Any]:
    if request.content_type in ("application/toml", "text/toml"):
        raw = await validate.read_body(request)
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"malformed TOML: {exc}", field="body") from None
        except RecursionError:
            raise ApiError(400, "TOML nested too deeply", field="body") from None
        validate.storable(doc)
        return doc
    return await validate.read_object(request)


async def import_config(request: web.Request) -> web.Response:
    """Apply a whole config document atomically; the sites it names are replaced."""
    require_admin(request)
    doc = await _read_config_document(request)
    normalised = config_to_dict(parse_config(doc))

    async def change(conn: asyncpg.Connection) -> None:
        for i, site in enumerate(normalised["sites"]):
            await config_repo.replace_site(conn, site, f"sites[{i}]")

    config = await _commit(request, change)
    keys = [s["key"] for s in normalised["sites"]]
    return web.json_response({"imported": keys, "sites": len(config["sites"])})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/sites", list_sites), web.post("/v1/sites", create_site),
        web.get("/v1/sites/{site}", get_site), web.put("/v1/sites/{site}", update_site),
        web.patch("/v1/sites/{site}", update_site), web.delete("/v1/sites/{site}", delete_site),
        web.get("/v1/sources", list_sources), web.post("/v1/sources", create_source),
        web.get("/v1/sources/{source}", get_source),
        web.put("/v1/sources/{source}", update_source),
        web.patch("/v1/sources/{source}", update_source),
        web.delete("/v1/sources/{source}", delete_source),
        web.get("/v1/numbers", list_numbers), web.post("/v1/numbers", create_number),
        web.get("/v1/numbers/{number}", get_number),
        web.patch("/v1/numbers/{number}", update_number),
        web.delete("/v1/numbers/{number}", delete_number),
        web.post("/v1/import", import_config),
    ]
