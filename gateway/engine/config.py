"""The site configuration: parsed, validated and normalised into frozen dataclasses.

The same schema arrives as TOML (the config file) and as JSON (the admin API); both give a
plain dict to `parse_config`, which raises `ConfigError(field, message)` on the first problem,
`field` being a path such as `sites[0].sources[1].numbers[2]`. Phone numbers are stored in
E.164 (numbers without a country code are read as US numbers). `config_to_dict` is the inverse
(`parse_config(config_to_dict(c)) == c`), used by the admin API to store and return it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.engine.errors import ConfigError
from gateway.engine.fields import Fields, text
from gateway.engine.phones import parse_e164
from gateway.engine.rules import MatchRule, implicit_rules, parse_match, rule_to_dict
from scoring.model import MIXED, profile_names

KINDS = ("online", "offline")
OVERFLOW_POLICIES = ("share", "overflow_number", "site_number")
DEFAULT_IDLE_TIMEOUT_S = 1800.0  # reservation after the last activity: 30 min, common in the field
DEFAULT_MATCH_WINDOW_S = 30 * 86400.0  # calls look back 30 days for candidates (issue 6)
DEFAULT_RING_TIMEOUT_S = 30.0  # seconds the forwarded call rings, as Twilio's <Dial> default
DEFAULT_STICKINESS_DAYS = 30.0  # a returning visitor keeps their number this long (issue 3)
_SITE_KEY = re.compile(r"^[a-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """A channel of a site: an online pool of numbers or offline static numbers."""

    name: str
    kind: str  # "online" | "offline"
    forward_to: str  # E.164 number calls are forwarded to
    numbers: tuple[str, ...] = ()  # E.164 tracking numbers, config order (the ring's tie-break)
    match: tuple[MatchRule, ...] = ()  # OR-ed rules; empty for offline sources
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S
    overflow: str = "share"  # "share" | "overflow_number" | "site_number"
    overflow_number: str | None = None
    match_window: float = DEFAULT_MATCH_WINDOW_S
    record: bool = False
    whisper: str | None = None
    ring_timeout: float = DEFAULT_RING_TIMEOUT_S
    active: bool = True
    scoring: str = MIXED  # the likelihood model's profile (scoring.model.profile_names())

    def tracking_numbers(self) -> tuple[str, ...]:
        """Every number that belongs to this source (its numbers, then its overflow number)."""
        extra = (self.overflow_number,) if self.overflow_number else ()
        return self.numbers + extra


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """A website: its key for swap.js, the numbers its pages print, and its sources."""

    key: str
    name: str
    swap_targets: tuple[str, ...] = ()  # E.164 business numbers printed on the pages
    allowed_origins: tuple[str, ...] = ()  # "https://acme.test", lower-case, no trailing /
    stickiness_days: float = DEFAULT_STICKINESS_DAYS
    active: bool = True
    sources: tuple[SourceConfig, ...] = ()

    @property
    def own_number(self) -> str:
        """The number shown when nothing is tracked: the first swap target (else the first
        source's forward_to; parse_config guarantees one of them exists)."""
        return self.swap_targets[0] if self.swap_targets else self.sources[0].forward_to


@dataclass(frozen=True, slots=True)
class Config:
    sites: tuple[SiteConfig, ...] = ()


def parse_config(config: Mapping[str, Any]) -> Config:
    """Validate and normalise a config dict `{"sites": [...]}`; raises ConfigError."""
    f = Fields(config, "")
    sites = tuple(_site(raw, f"sites[{i}]") for i, raw in enumerate(f.items("sites")))
    f.done()
    _check_unique_keys(sites)
    _check_numbers(sites)
    return Config(sites)


def _site(raw: object, path: str) -> SiteConfig:
    f = Fields(raw, path)
    key = f.text("key", required=True) or ""
    if not _SITE_KEY.match(key):
        raise ConfigError(f.at("key"), "expected 1-64 characters of a-z, 0-9, _ or -")
    site = SiteConfig(
        key=key,
        name=f.text("name", key) or key,
        swap_targets=_numbers(f, "swap_targets"),
        allowed_origins=tuple(_origin(o, f"{f.at('allowed_origins')}[{i}]")
                              for i, o in enumerate(f.items("allowed_origins"))),
        stickiness_days=_days(f, "stickiness_days"),
        active=f.boolean("active", True),
        sources=tuple(_source(s, f"{f.at('sources')}[{i}]")
                      for i, s in enumerate(f.items("sources"))),
    )
    f.done()
    if not site.swap_targets and not site.sources:
        raise ConfigError(f.at("swap_targets"), "a site needs a swap target (its own number)")
    if len(set(site.swap_targets)) != len(site.swap_targets):
        raise ConfigError(f.at("swap_targets"), "duplicate number")
    _check_source_names(site, f.at("sources"))
    return site


def _source(raw: object, path: str) -> SourceConfig:
    f = Fields(raw, path)
    name = (f.text("name", required=True) or "").strip()
    kind = f.text("kind", required=True) or ""
    if kind not in KINDS:
        raise ConfigError(f.at("kind"), f"unknown kind {kind!r}: expected 'online' or 'offline'")
    source = SourceConfig(
        name=name,
        kind=kind,
        forward_to=_number(f.require("forward_to"), f.at("forward_to")),
        numbers=_numbers(f, "numbers"),
        match=_match(f, name, kind),
        idle_timeout=f.seconds("idle_timeout", DEFAULT_IDLE_TIMEOUT_S),
        overflow=_overflow(f),
        overflow_number=_optional_number(f, "overflow_number"),
        match_window=f.seconds("match_window", DEFAULT_MATCH_WINDOW_S),
        record=f.boolean("record", False),
        whisper=f.text("whisper"),
        ring_timeout=f.seconds("ring_timeout", DEFAULT_RING_TIMEOUT_S),
        active=f.boolean("active", True),
        scoring=_scoring(f),
    )
    f.done()
    _check_source(source, f)
    return source


def _check_source(source: SourceConfig, f: Fields) -> None:
    if source.kind == "online" and not source.numbers:
        raise ConfigError(f.at("numbers"), "an online source needs at least one number")
    if source.kind == "online" and not source.match:
        raise ConfigError(f.at("match"), f"no rules: {source.name!r} is not a preset name, "
                          "so an online source needs `match`")
    if source.overflow == "overflow_number" and source.overflow_number is None:
        raise ConfigError(f.at("overflow_number"), "required when overflow = 'overflow_number'")
    if source.overflow != "overflow_number" and source.overflow_number is not None:
        raise ConfigError(f.at("overflow_number"), "only used when overflow = 'overflow_number'")


def _match(f: Fields, name: str, kind: str) -> tuple[MatchRule, ...]:
    raw = f.get("match")
    if raw is None:
        return implicit_rules(name) if kind == "online" else ()
    if kind == "offline":
        raise ConfigError(f.at("match"), "offline sources are not matched to landings")
    return parse_match(raw, f.at("match"))


def _overflow(f: Fields) -> str:
    policy = f.text("overflow", "share")
    if policy not in OVERFLOW_POLICIES:
        raise ConfigError(f.at("overflow"), f"unknown overflow policy {policy!r}: expected "
                          + ", ".join(map(repr, OVERFLOW_POLICIES)))
    return policy


def _scoring(f: Fields) -> str:
    name = f.text("scoring", MIXED)
    names = profile_names()
    if name not in names:
        raise ConfigError(f.at("scoring"), f"unknown scoring profile {name!r}: expected "
                          + ", ".join(map(repr, names)))
    return name


def _days(f: Fields, key: str) -> float:
    value = f.get(key)
    if value is None:
        return DEFAULT_STICKINESS_DAYS
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f.at(key), "expected a number of days")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f.at(key), "must be a finite number >= 0 (0 turns stickiness off)")
    return float(value)


def _number(raw: object, path: str) -> str:
    if not isinstance(raw, str):
        raise ConfigError(path, f"expected a phone number string, got {type(raw).__name__}")
    e164 = parse_e164(raw)
    if e164 is None:
        raise ConfigError(path, f"invalid phone number {raw!r}")
    return e164


def _optional_number(f: Fields, key: str) -> str | None:
    raw = f.get(key)
    return None if raw is None else _number(raw, f.at(key))


def _numbers(f: Fields, key: str) -> tuple[str, ...]:
    return tuple(_number(raw, f"{f.at(key)}[{i}]") for i, raw in enumerate(f.items(key)))


def _origin(raw: object, path: str) -> str:
    origin = text(raw, path).strip().lower().rstrip("/")
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError(path, f"invalid origin {raw!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise ConfigError(path, f"expected an origin like https://example.com, got {raw!r}")
    return origin


def _check_unique_keys(sites: tuple[SiteConfig, ...]) -> None:
    seen: dict[str, int] = {}
    for i, site in enumerate(sites):
        if site.key in seen:
            raise ConfigError(f"sites[{i}].key",
                              f"duplicate site key {site.key!r} (also sites[{seen[site.key]}])")
        seen[site.key] = i


def _check_source_names(site: SiteConfig, path: str) -> None:
    seen: dict[str, int] = {}
    for i, source in enumerate(site.sources):
        if source.name in seen:
            raise ConfigError(f"{path}[{i}].name", f"duplicate source name {source.name!r} "
                              f"(also {path}[{seen[source.name]}])")
        seen[source.name] = i


def _check_numbers(sites: tuple[SiteConfig, ...]) -> None:
    """Tracking numbers are unique across the whole config and never a forward_to target."""
    owner: dict[str, str] = {}
    for i, site in enumerate(sites):
        for j, source in enumerate(site.sources):
            base = f"sites[{i}].sources[{j}]"
            paths = [f"{base}.numbers[{k}]" for k in range(len(source.numbers))]
            paths += [f"{base}.overflow_number"] if source.overflow_number else []
            for number, path in zip(source.tracking_numbers(), paths, strict=True):
                if number in owner:
                    raise ConfigError(path, f"duplicate number {number} (also {owner[number]})")
                owner[number] = path
    for i, site in enumerate(sites):
        for j, source in enumerate(site.sources):
            if source.forward_to in owner:
                raise ConfigError(f"sites[{i}].sources[{j}].forward_to",
                                  f"{source.forward_to} is a tracking number "
                                  f"({owner[source.forward_to]}): forwarding to it would loop")


def config_to_dict(config: Config) -> dict[str, Any]:
    """The config as a plain dict of the input schema (JSON/TOML-ready, normalised values)."""
    return {"sites": [_site_dict(site) for site in config.sites]}


def _site_dict(site: SiteConfig) -> dict[str, Any]:
    return {
        "key": site.key,
        "name": site.name,
        "swap_targets": list(site.swap_targets),
        "allowed_origins": list(site.allowed_origins),
        "stickiness_days": _plain(site.stickiness_days),
        "active": site.active,
        "sources": [_source_dict(source) for source in site.sources],
    }


def _source_dict(source: SourceConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": source.name,
        "kind": source.kind,
        "forward_to": source.forward_to,
        "numbers": list(source.numbers),
    }
    if source.match:
        rules = [rule_to_dict(rule) for rule in source.match]
        out["match"] = rules[0] if len(rules) == 1 else rules
    out |= {
        "idle_timeout": _plain(source.idle_timeout),
        "overflow": source.overflow,
        "match_window": _plain(source.match_window),
        "record": source.record,
        "ring_timeout": _plain(source.ring_timeout),
        "active": source.active,
    }
    if source.overflow_number is not None:
        out["overflow_number"] = source.overflow_number
    if source.whisper is not None:
        out["whisper"] = source.whisper
    if source.scoring != MIXED:
        out["scoring"] = source.scoring
    return out


def _plain(value: float) -> int | float:
    """Whole numbers as ints, so the dict reads like the TOML a person wrote."""
    return int(value) if value.is_integer() else value
