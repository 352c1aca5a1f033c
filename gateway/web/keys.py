"""Typed application keys: everything a handler reaches through `request.app`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.engine import Engine
    from gateway.store.writer import Writer
    from gateway.web.metrics import Metrics


class State:
    """Mutable runtime state owned by the app: the engine is replaced on reconfiguration."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.pool: asyncpg.Pool | None = None
        self.db_url = ""  # DATABASE_URL, or the embedded server's (a secret: never logged)
        self.writer: Writer | None = None
        self.admin_key: str = ""
        self.config_lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.origins: frozenset[str] = frozenset()  # every site's allowed origins (CORS)
        self.sip: Any = None  # gateway.sip.server.SipServer when DNI_SIP_PORT is set
        self.sip_address: tuple[str, int] | None = None
        # Scale-out (DNI_CLUSTER=on): gateway.store.cluster's LeaseKeeper and Follower.
        self.worker_id: str | None = None
        self.leases: Any = None
        self.lending: Any = None
        self.follower: Any = None
        self.config_epoch = 0  # the configuration counter this process has applied

    def use_engine(self, engine: Engine) -> None:
        self.engine = engine
        self.refresh()

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply a new stored configuration to the live engine (keeping its state)."""
        if self.engine is not None:
            self.engine.reconfigure(config)
        self.origins = frozenset(o for site in config.get("sites", [])
                                 for o in site.get("allowed_origins", []))

    def refresh(self) -> None:
        if self.engine is not None:
            self.origins = frozenset(o for site in self.engine.config.sites
                                     for o in site.allowed_origins)


SETTINGS = web.AppKey("settings", Settings)
STATE = web.AppKey("state", State)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
