"""`dni-gateway purge`: retention and deletion from the command line.

    dni-gateway purge --before 2025-01-01      # traffic older than a date (ISO 8601 or epoch)
    dni-gateway purge --caller +14155559999    # every call of one caller (any phone format)

Talks to the database directly, like `dni-gateway migrate` (DATABASE_URL, or the embedded
server in DNI_DATA_DIR when it is unset), deletes in batches (`gateway.store.purge`) and prints
how many rows of each kind went; then does the same to the quarantine files of the spool in
DNI_DATA_DIR (records Postgres refused, kept for an operator to look at). A running gateway
keeps what it holds in memory until it is restarted (see SECURITY.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from gateway.report_cli import when


def add_parser(subparsers: Any) -> None:
    """Register `purge` on the `dni-gateway` command's subparsers."""
    from gateway.store.purge import BATCH

    purge = subparsers.add_parser("purge", help="delete old traffic, or one caller's calls")
    what = purge.add_mutually_exclusive_group(required=True)
    what.add_argument("--before", type=when, metavar="DATE",
                      help="delete calls, sessions, events and visitors older than DATE "
                           "(ISO 8601, UTC when no offset, or epoch seconds)")
    what.add_argument("--caller", metavar="NUMBER",
                      help="delete every call from this phone number with its candidates "
                           "and match history")
    purge.add_argument("--batch", type=int, default=BATCH,
                       help=f"rows per delete statement (default {BATCH})")


def run(args: argparse.Namespace) -> int:
    """Purge and print the counts; 2 for invalid arguments."""
    import asyncpg

    if args.batch < 1:
        return _refuse("--batch must be at least 1")
    try:
        return _caller(args) if args.caller is not None else _before(args)
    except asyncpg.UndefinedTableError:
        return _refuse("this database has no gateway tables (run `dni-gateway migrate`)")


def _caller(args: argparse.Namespace) -> int:
    from gateway.engine.phones import parse_e164
    from gateway.store.purge import purge_caller

    caller = parse_e164(args.caller.strip())
    if caller is None:
        return _refuse(f"--caller: {args.caller[:64]!r} is not a phone number")
    ids: list[str] = []
    done = asyncio.run(_with_pool(lambda pool: purge_caller(pool, caller, batch=args.batch,
                                                            deleted=ids)))
    print(f"purged the calls of {caller}: {done.summary()}", flush=True)
    return _quarantine(caller=caller, call_ids=ids)


def _before(args: argparse.Namespace) -> int:
    from gateway.store.purge import purge_before

    if args.before > time.time():
        return _refuse("--before is in the future: that would delete live traffic")
    ids: list[str] = []
    done = asyncio.run(_with_pool(lambda pool: purge_before(pool, args.before,
                                                            batch=args.batch, deleted=ids)))
    date = datetime.fromtimestamp(args.before, UTC).isoformat()
    print(f"purged what is older than {date}: {done.summary()}", flush=True)
    return _quarantine(before=args.before, call_ids=ids)


def _quarantine(**which: Any) -> int:
    """The same purge over the spool's quarantine files (records Postgres refused, kept by the
    gateway in DNI_DATA_DIR): prints where it looked and how many went; 1 when it could not."""
    from gateway.settings import from_env
    from gateway.store.spool import purge_quarantine

    spool = from_env().data_dir.resolve() / "spool"
    if not spool.is_dir():
        print(f"no spool at {spool} (set DNI_DATA_DIR to the gateway's): no quarantined "
              "records purged")
        return 0
    try:
        removed = purge_quarantine(spool, **which)
    except OSError as exc:
        print(f"dni-gateway purge: the quarantine files under {spool} could not be purged: "
              f"{exc}", file=sys.stderr)
        return 1
    print(f"purged {removed} quarantined records under {spool}")
    return 0


def _refuse(message: str) -> int:
    print(f"dni-gateway purge: {message}", file=sys.stderr)
    return 2


async def _with_pool(work: Callable[[Any], Awaitable[Any]]) -> Any:
    from gateway.settings import from_env
    from gateway.store.db import configured_pool

    async with configured_pool(from_env()) as pool:
        return await work(pool)
