"""The site configuration file (TOML, the schema in design.md) loaded at `serve --config`.

The file is parsed and validated whole before anything is written; a bad entry is refused with
a message naming it, and nothing is half-applied (the import is one transaction).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import asyncpg

from gateway import log
from gateway.engine.config import config_to_dict, parse_config
from gateway.engine.errors import ConfigError
from gateway.store.config_repo import import_config

_log = log.get("gateway.configfile")


class ConfigFileError(Exception):
    pass


def read(path: Path) -> dict[str, Any]:
    """Parse and validate; return the normalised config dict or raise ConfigFileError."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: malformed TOML: {exc}") from None
    try:
        return config_to_dict(parse_config(raw))
    except ConfigError as exc:
        raise ConfigFileError(f"{path}: {exc.field}: {exc.message}") from None


async def import_file(pool: asyncpg.Pool, path: Path) -> None:
    config = read(path)
    await import_config(pool, config)
    _log.info("config_imported", path=str(path), sites=[s["key"] for s in config["sites"]])
