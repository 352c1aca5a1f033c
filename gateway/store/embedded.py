"""The embedded PostgreSQL used when DATABASE_URL is not set: a real server run by `pgserver`
in `<DNI_DATA_DIR>/pg`, listening on a Unix socket only, stopped when the gateway stops."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


class EmbeddedPostgres:
    """Start (or attach to) the server in `data_dir`; `url` is the asyncpg DSN."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        import pgserver  # imported here: only the embedded mode needs its binaries

        self.data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
            warnings.simplefilter("ignore")
            self._server = pgserver.get_server(self.data_dir.resolve(), cleanup_mode="stop")
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
