"""Simulated traffic with ground truth, stored through the real engine and write-behind writer.

One online source ("Google Ads", 500 weekday visitors a day, 5% of them call) and one offline
source, for one week. `run(pool)` drives the simulator (`scoring.simulate.replay`) with a pool of
`pool` numbers and keeps the engine's records and the simulator's measured accuracy (it knows
who really called); `store(db_url, pool)` writes those records into a database the way the
gateway does, and the site's config beside them.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.engine import Engine, config_to_dict, parse_config
from gateway.store import config_repo
from gateway.store.db import create_pool
from gateway.store.spool import Spool
from gateway.store.writer import Writer
from scoring import simulate
from scoring.traffic import EPOCH, SourceSpec, Traffic, generate, scenario

DAYS = 7
SEED = 3
SINCE = EPOCH
UNTIL = EPOCH + DAYS * 86_400.0
SOURCE = "Google Ads"
PARAMS = scenario(
    "default", daily_visitors=500.0, call_rate=0.05,
    sources=(SourceSpec(SOURCE, 1.0, "gclid=sim", "https://www.google.com/",
                        (("gclid", True),)),),
)
BILLBOARD = "Billboard I-80"
BILLBOARD_NUMBERS = ["+14159990001", "+14159990002"]
BILLBOARD_CALLS = 3  # all to the first number: the second is unused


@functools.cache
def traffic() -> Traffic:
    return generate(PARAMS, DAYS, SEED)


@dataclass(frozen=True)
class Run:
    config: dict[str, Any]
    row: simulate.Row  # the simulator's figures at this pool size (accuracy with ground truth)
    records: list[Any]


@functools.cache
def run(pool: int) -> Run:
    """The week's traffic through a real engine whose pool has `pool` numbers."""
    box: list[Engine] = []

    def factory(config: dict[str, Any]) -> Engine:
        site = config["sites"][0]
        site["sources"][0]["numbers"] = [f"{simulate.NUMBER_BLOCK}{k:06d}" for k in range(pool)]
        site["sources"].append({"name": BILLBOARD, "kind": "offline",
                                "forward_to": simulate.BUSINESS, "numbers": BILLBOARD_NUMBERS})
        box.append(Engine.from_config(config, seed=simulate.ENGINE_SEED))
        return box[0]

    row = simulate.replay(traffic(), 20, seed=SEED, engine_factory=factory).row
    engine = box[0]
    for i in range(BILLBOARD_CALLS):
        engine.call(to=BILLBOARD_NUMBERS[0], caller=f"+1650777000{i}", call_id=f"bb{i}",
                    at=SINCE + 86_400.0 * (i + 1))
    config = config_to_dict(engine.config)
    return Run(config, row, engine.drain())


async def store(db_url: str, pool: int) -> Run:
    """Write run(pool)'s config and records into the database at `db_url`."""
    sim = run(pool)
    db = await create_pool(db_url)
    try:
        await config_repo.import_config(db, config_to_dict(parse_config(sim.config)))
        with tempfile.TemporaryDirectory() as spool_dir:
            spool = Spool(Path(spool_dir))
            spool.open()
            writer = Writer(db, spool, 0.05)
            writer.add(sim.records)
            await writer.flush()
            spool.close()
    finally:
        await db.close()
    return sim
