"""Typed reads from an untrusted config mapping, each failure a `ConfigError` naming the path.

The config parser (`config.py`, `rules.py`) reads every key through a `Fields` so that a wrong
type, a missing required key or an unknown key (a typo) is reported with the exact path, e.g.
`sites[0].sources[1].idle_timeout: expected a number of seconds`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.engine.errors import ConfigError

MAX_TEXT_LENGTH = 256  # names, rule values and whisper texts: far above any real one


class Fields:
    """The keys of one config mapping at `path`; `done()` rejects the keys nobody read."""

    __slots__ = ("_raw", "_seen", "path")

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"expected a table (mapping), got {type(raw).__name__}")
        self._raw: Mapping[Any, Any] = raw
        self._seen: set[str] = set()
        self.path = path

    def at(self, key: str) -> str:
        """The path of `key` inside this mapping."""
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> object:
        """The raw value of `key`, or None when absent."""
        self._seen.add(key)
        return self._raw.get(key)

    def has(self, key: str) -> bool:
        return key in self._raw

    def require(self, key: str) -> object:
        if key not in self._raw or self._raw[key] is None:
            raise ConfigError(self.at(key), "missing required key")
        return self.get(key)

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.require(key) if required else self.get(key)
        if value is None:
            return default
        return text(value, self.at(key))

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.at(key), "expected true or false")
        return value

    def seconds(self, key: str, default: float) -> float:
        """A positive, finite number (int or float, not bool)."""
        value = self.get(key)
        if value is None:
            return default
        return positive(value, self.at(key))

    def items(self, key: str) -> list[object]:
        """A list value (absent: empty)."""
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            raise ConfigError(self.at(key), f"expected a list, got {type(value).__name__}")
        return list(value)

    def done(self) -> None:
        """Raise on the first key that was never read: typos must not be silent."""
        for key in self._raw:
            if key not in self._seen:
                raise ConfigError(self.at(str(key)), "unknown key")


def text(value: object, path: str) -> str:
    """A non-empty string of at most MAX_TEXT_LENGTH characters."""
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise ConfigError(path, "must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise ConfigError(path, f"longer than {MAX_TEXT_LENGTH} characters")
    return value


def positive(value: object, path: str) -> float:
    """A finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, "expected a number")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(path, "must be a finite number greater than 0")
    return number
