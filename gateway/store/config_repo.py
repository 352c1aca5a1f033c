"""Sites, sources and tracking numbers in Postgres, and the engine config built from them.

Postgres is the source of truth for configuration. Every change runs in one transaction that
ends by re-reading the whole configuration and validating it with the engine's parser, so a
change that would leave an invalid configuration is rolled back whole (all or nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from gateway.engine.config import parse_config

SITE_COLUMNS = ("key", "name", "swap_targets", "allowed_origins", "active")
SOURCE_COLUMNS = ("name", "kind", "match", "forward_to", "active")
# Advisory lock serialising configuration writers across processes (scale-out safe).
CONFIG_LOCK_KEY = 0x646E6902


class Conflict(Exception):
    """A change collides with existing data (409); `field` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _split(doc: Mapping[str, Any], columns: tuple[str, ...], skip: tuple[str, ...]) -> tuple[
    dict[str, Any], dict[str, Any]
]:
    core = {k: doc[k] for k in columns if k in doc}
    options = {k: v for k, v in doc.items() if k not in columns and k not in skip}
    return core, options


async def load_config(conn: asyncpg.Connection) -> dict[str, Any]:
    """The whole configuration as the engine's config dict (active numbers only)."""
    sites = await conn.fetch("SELECT * FROM sites ORDER BY id")
    sources = await conn.fetch("SELECT * FROM sources ORDER BY site_id, position, id")
    numbers = await conn.fetch(
        "SELECT e164, source_id FROM numbers WHERE active ORDER BY source_id, position, id"
    )
    by_source: dict[int, list[str]] = {}
    for n in numbers:
        by_source.setdefault(n["source_id"], []).append(n["e164"])
    by_site: dict[int, list[dict[str, Any]]] = {}
    for s in sources:
        doc = {k: s[k] for k in SOURCE_COLUMNS if s[k] is not None}
        doc.update(s["options"])
        doc["numbers"] = by_source.get(s["id"], [])
        by_site.setdefault(s["site_id"], []).append(doc)
    out = []
    for site in sites:
        doc = {k: site[k] for k in SITE_COLUMNS}
        doc["swap_targets"] = list(site["swap_targets"])
        doc["allowed_origins"] = list(site["allowed_origins"])
        doc.update(site["options"])
        doc["sources"] = by_site.get(site["id"], [])
        out.append(doc)
    return {"sites": out}


async def validate_stored(conn: asyncpg.Connection) -> dict[str, Any]:
    """Re-read and validate the configuration inside the caller's transaction."""
    config = await load_config(conn)
    parse_config(config)  # raises ConfigError naming the field; the transaction rolls back
    return config


async def lock(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CONFIG_LOCK_KEY)


async def upsert_site(conn: asyncpg.Connection, doc: Mapping[str, Any]) -> int:
    core, options = _split(doc, SITE_COLUMNS, ("sources",))
    return int(await conn.fetchval(
        "INSERT INTO sites (key, name, swap_targets, allowed_origins, active, options)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (key) DO UPDATE SET name = $2, swap_targets = $3, allowed_origins = $4,"
        " active = $5, options = $6, updated_at = now() RETURNING id",
        core["key"], core.get("name", core["key"]), list(core.get("swap_targets", [])),
        list(core.get("allowed_origins", [])), core.get("active", True), options,
    ))


async def upsert_source(
    conn: asyncpg.Connection, site_id: int, doc: Mapping[str, Any], position: int
) -> int:
    core, options = _split(doc, SOURCE_COLUMNS, ("numbers", "site"))
    return int(await conn.fetchval(
        "INSERT INTO sources (site_id, name, kind, position, match, forward_to, active, options)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (site_id, name) DO UPDATE SET kind = $3, position = $4, match = $5,"
        " forward_to = $6, active = $7, options = $8, updated_at = now() RETURNING id",
        site_id, core["name"], core.get("kind", "online"), position, core.get("match"),
        core["forward_to"], core.get("active", True), options,
    ))


async def set_numbers(
    conn: asyncpg.Connection, site_id: int, source_id: int, numbers: list[str], field: str
) -> None:
    """Attach `numbers` (E.164, in order) to the source, active; refuse numbers of other sites."""
    for i, e164 in enumerate(numbers):
        owner = await conn.fetchval(
            "SELECT s.site_id FROM numbers n JOIN sources s ON s.id = n.source_id"
            " WHERE n.e164 = $1", e164,
        )
        if owner is not None and owner != site_id:
            raise Conflict(f"{field}[{i}]", f"{e164} already belongs to another site")
        await conn.execute(
            "INSERT INTO numbers (e164, source_id, position) VALUES ($1, $2, $3)"
            " ON CONFLICT (e164) DO UPDATE SET source_id = $2, position = $3, active = true",
            e164, source_id, i,
        )


async def replace_site(conn: asyncpg.Connection, doc: Mapping[str, Any], field: str) -> int:
    """Write one site with exactly the sources and active numbers in `doc` (validated).
    Deactivated numbers are kept (inactive) unless `doc` lists them again."""
    site_id = await upsert_site(conn, doc)
    sources = list(doc.get("sources", []))
    await conn.execute(
        "DELETE FROM sources WHERE site_id = $1 AND NOT (name = ANY($2::text[]))",
        site_id, [s["name"] for s in sources],
    )
    wanted = [n for s in sources for n in s.get("numbers", [])]
    await conn.execute(
        "DELETE FROM numbers USING sources WHERE numbers.source_id = sources.id"
        " AND sources.site_id = $1 AND numbers.active AND NOT (numbers.e164 = ANY($2::text[]))",
        site_id, wanted,
    )
    for i, source in enumerate(sources):
        source_id = await upsert_source(conn, site_id, source, i)
        await set_numbers(conn, site_id, source_id, list(source.get("numbers", [])),
                          f"{field}.sources[{i}].numbers")
    return site_id


async def import_config(pool: asyncpg.Pool, config: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a whole config document atomically: the sites it names are replaced, others kept.

    `config` must already be normalised by `parse_config` + `config_to_dict`. Returns the new
    full configuration."""
    async with pool.acquire() as conn, conn.transaction():
        await lock(conn)
        for i, site in enumerate(config.get("sites", [])):
            await replace_site(conn, site, f"sites[{i}]")
        return await validate_stored(conn)


async def delete_site(conn: asyncpg.Connection, key: str) -> bool:
    return await conn.fetchval("DELETE FROM sites WHERE key = $1 RETURNING id", key) is not None


async def source_ids(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT s.id, sites.key, s.name FROM sources s JOIN sites ON sites.id = s.site_id"
    )
    return {(r["key"], r["name"]): r["id"] for r in rows}


async def source_by_id(conn: asyncpg.Connection, source_id: int) -> tuple[str, str] | None:
    row = await conn.fetchrow(
        "SELECT sites.key, s.name FROM sources s JOIN sites ON sites.id = s.site_id"
        " WHERE s.id = $1", source_id,
    )
    return None if row is None else (row["key"], row["name"])


async def rename_source(conn: asyncpg.Connection, source_id: int, name: str) -> None:
    await conn.execute("UPDATE sources SET name = $2 WHERE id = $1", source_id, name)


async def number_owner(conn: asyncpg.Connection, e164: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT n.e164, n.active, n.source_id, s.name AS source, sites.key AS site"
        " FROM numbers n JOIN sources s ON s.id = n.source_id JOIN sites ON sites.id = s.site_id"
        " WHERE n.e164 = $1", e164,
    )


async def list_numbers(conn: asyncpg.Connection, site: str | None,
                       source: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT n.e164, n.active, n.source_id, s.name AS source, s.kind, sites.key AS site"
        " FROM numbers n JOIN sources s ON s.id = n.source_id JOIN sites ON sites.id = s.site_id"
        " WHERE ($1::text IS NULL OR sites.key = $1) AND ($2::text IS NULL OR s.name = $2)"
        " ORDER BY sites.key, s.position, n.position", site, source,
    )


async def set_number_active(conn: asyncpg.Connection, e164: str, active: bool) -> None:
    await conn.execute("UPDATE numbers SET active = $2 WHERE e164 = $1", e164, active)


async def inactive_numbers(conn: asyncpg.Connection, source_id: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT e164 FROM numbers WHERE source_id = $1 AND NOT active ORDER BY position", source_id
    )
    return [r["e164"] for r in rows]
