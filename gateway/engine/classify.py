"""Which source a landing belongs to: parse the landing URL and referrer, then match rules.

Precedence (documented in the engine contract): the site's active online sources are tried in
config order; within a source its rules (OR-ed tables, see `rules.py`) are tried in order; the
first source with a matching rule wins. A landing that matches no source gets the site's own
number and no session (nothing to track it on). A source with a preset rule matches when the
landing's preset channel (`Landing.preset`, the first row of `rules.PRESETS` it matches) is
that preset, so presets never overlap.

A referrer on the site's own host (or a subdomain, with or without `www.`, or one of its allowed
origins) is internal: it counts as no referrer. Parsing never raises: lengths are capped by the
engine before (`InvalidInput`), and any text parses to some landing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import TypeVar
from urllib.parse import unquote_plus

from gateway.engine.inputs import storable
from gateway.engine.rules import CLICK_IDS, PRESETS, UTM_KEYS, MatchRule

ATTRIBUTION_PREFIX = "utm_"  # every utm_* parameter is kept on the session, with the click ids
# Second-level labels of country domains (google.co.uk, google.com.au) accepted by "host.*".
_COUNTRY_SLD = r"(?:co|com|net|org|ac|gov|edu|ne|or)\."
_TRACKING = CLICK_IDS + UTM_KEYS
_CLICK_IDS = frozenset(CLICK_IDS)
_UNSET = object()  # a lazily computed attribute not computed yet
HOST_CACHE_SIZE = 2048  # distinct referrers remembered (<= 8 MiB at the 4 KiB length cap)
_AUTHORITY = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://([^/?#\\]*)")  # scheme://authority

S = TypeVar("S")


class Landing:
    """A parsed landing: its query parameters now, the rest when a rule first asks.

    Paid landings are usually classified by a click id alone, so the referrer is only looked at
    (host, internal or external) when a rule needs it.
    """

    __slots__ = ("_external", "_own_hosts", "_preset", "_referrer", "_referrer_host", "_tagged",
                 "_url", "params")

    def __init__(self, url: str, referrer: str | None, own_hosts: Sequence[str]) -> None:
        self.params = _query(url.partition("#")[0].partition("?")[2])
        self._url = url
        self._referrer = referrer
        self._own_hosts = own_hosts
        self._referrer_host: object = _UNSET
        self._external: object = _UNSET
        self._preset: object = _UNSET
        self._tagged: object = _UNSET

    @property
    def referrer_host(self) -> str | None:
        """The referrer's host, lower-case, internal or not (None: no usable referrer)."""
        if self._referrer_host is _UNSET:
            self._referrer_host = _cached_host(self._referrer) if self._referrer else None
        return self._referrer_host if isinstance(self._referrer_host, str) else None

    @property
    def external(self) -> bool:
        """The referrer is outside the site (not its host, a subdomain or an allowed origin)."""
        if self._external is _UNSET:
            host = self.referrer_host
            self._external = host is not None and not _is_own(host, self._url, self._own_hosts)
        return self._external is True

    @property
    def preset(self) -> str | None:
        """The landing's built-in channel: the first preset in `rules.PRESETS` it matches."""
        if self._preset is _UNSET:
            self._preset = classify(_PRESETS, self)
        return self._preset if isinstance(self._preset, str) else None

    @property
    def tagged(self) -> bool:
        """The landing carries a click id or a utm_source/medium/campaign value."""
        if self._tagged is _UNSET:
            params = self.params
            self._tagged = bool(params) and any(params.get(key) for key in _TRACKING)
        return self._tagged is True

    def attribution(self) -> tuple[tuple[str, str], ...]:
        """Click ids and utm_* parameters present on the landing, sorted by key."""
        kept = [item for item in self.params.items()
                if item[1] and (item[0] in _CLICK_IDS or item[0].startswith(ATTRIBUTION_PREFIX))]
        kept.sort()
        return tuple(kept)


Predicate = Callable[[Landing], bool]


def compile_rule(rule: MatchRule) -> Predicate:
    """A rule as one predicate: the AND of one small check per condition it sets."""
    checks: list[Predicate] = []
    for key in CLICK_IDS:
        flag = getattr(rule, key)
        if flag is not None:
            checks.append(_nonempty(key) if flag else _missing(key))
    for key in UTM_KEYS:
        values = getattr(rule, key)
        if values is not None:
            checks.append(_one_of(key, frozenset(values)))
    for item in rule.landing_param or ():
        name, eq, value = item.partition("=")
        checks.append(_one_of(name, frozenset((value,))) if eq else _present(name))
    if rule.referrer is not None:
        checks.append(_external if rule.referrer == "external" else _internal)
    if rule.tagged is not None:
        checks.append(_tagged if rule.tagged else _untagged)
    if rule.referrer_host is not None:
        checks.append(_referred_by(rule.referrer_host))
    if rule.preset is not None:
        checks.append(_is_preset(rule.preset))
    return _every(checks)


def _every(checks: list[Predicate]) -> Predicate:
    if len(checks) == 1:
        return checks[0]

    def every(landing: Landing) -> bool:
        return all(check(landing) for check in checks)  # no checks: matches every landing

    return every


Matcher = tuple[frozenset[str], tuple[Predicate, ...]]  # preset names, other rules (OR-ed)


def compile_match(rules: Sequence[MatchRule]) -> Matcher:
    """A source's OR-ed rules: the bare `preset = "..."` ones become a set of names to compare
    with `Landing.preset` (one dict-free lookup), the rest predicates."""
    bare = MatchRule()
    presets = frozenset(r.preset for r in rules
                        if r.preset is not None and replace(r, preset=None) == bare)
    others = tuple(compile_rule(r) for r in rules if r.preset not in presets
                   or replace(r, preset=None) != bare)
    return presets, others


def _nonempty(key: str) -> Predicate:
    return lambda landing: bool(landing.params.get(key))


def _missing(key: str) -> Predicate:
    return lambda landing: not landing.params.get(key)


def _present(key: str) -> Predicate:
    return lambda landing: key in landing.params


def _one_of(key: str, values: frozenset[str]) -> Predicate:
    return lambda landing: landing.params.get(key, "").lower() in values


def _is_preset(name: str) -> Predicate:
    return lambda landing: landing.preset == name


def _external(landing: Landing) -> bool:
    return landing.external


def _internal(landing: Landing) -> bool:
    return not landing.external


def _tagged(landing: Landing) -> bool:
    return landing.tagged


def _untagged(landing: Landing) -> bool:
    return not landing.tagged


def _referred_by(hosts: tuple[str, ...]) -> Predicate:
    """Referrer host is one of `hosts` or a subdomain; "name.*" is `name` or `www.name` under
    any country domain (google.de, www.google.co.uk; not mail.google.com)."""
    plain = tuple(h for h in hosts if not h.endswith(".*"))
    suffixes = tuple("." + h for h in plain)
    names = "|".join(re.escape(h[:-2]) for h in hosts if h.endswith(".*"))
    pattern = rf"^(?:www\.)?(?:{names})\.(?:{_COUNTRY_SLD})?[a-z]{{2,}}$"
    wildcard = re.compile(pattern) if names else None

    def referred_by(landing: Landing) -> bool:
        host = landing.referrer_host
        if host is None:
            return False
        if host in plain or host.endswith(suffixes):
            return True
        return wildcard is not None and wildcard.search(host) is not None

    return referred_by


def classify(sources: Iterable[tuple[S, Matcher]], landing: Landing) -> S | None:
    """The first source (in the given order) with a rule matching the landing, or None."""
    for source, (presets, rules) in sources:
        if presets and landing.preset in presets:
            return source
        for rule in rules:
            if rule(landing):
                return source
    return None


_PRESETS: tuple[tuple[str, Matcher], ...] = tuple(
    (name, (frozenset(), tuple(compile_rule(rule) for rule in rules))) for name, rules in PRESETS
)


def parse_landing(url: str, referrer: str | None, own_hosts: Sequence[str]) -> Landing:
    """Parse a landing URL and its referrer; `own_hosts` are the site's other hosts (lower-case,
    without `www.`: see `own_host`).

    Never raises: text that is not an absolute URL has no host (a referrer without a host is
    no referrer) and its query is whatever follows the first "?".
    """
    return Landing(url, referrer, own_hosts)


def _host(url: str) -> str | None:
    """The lower-cased host of an absolute URL (no user info, port or trailing dot), or None."""
    found = _AUTHORITY.match(url)
    if found is None:
        return None
    host = found.group(1).rpartition("@")[2]
    # An IPv6 literal is bracketed; otherwise the port follows the first colon.
    host = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    return host.lower().rstrip(".") or None


# Referrers repeat ("https://www.google.com/"); landing URLs rarely do, so only these are cached.
_cached_host = lru_cache(maxsize=HOST_CACHE_SIZE)(_host)


def _is_own(host: str, url: str, own_hosts: Sequence[str]) -> bool:
    base = own_host(host)
    if any(_within(base, own) for own in own_hosts):
        return True
    landing_host = _host(url)
    return landing_host is not None and _within(base, own_host(landing_host))


def _within(host: str, own: str) -> bool:
    return host == own or host.endswith("." + own)


def own_host(host: str) -> str:
    """A host as compared for "same site": lower-case, without `www.` and a trailing dot."""
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _query(query: str) -> dict[str, str]:
    """Query parameters, keys lower-cased, first value kept (blank values kept as "").
    Percent-decoded text holds no NUL or lone surrogate (each becomes U+FFFD): the engine
    keeps click ids and utm_* values in its records, which must be storable."""
    params: dict[str, str] = {}
    if not query:
        return params
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if "%" in key or "+" in key:
            key = _decoded(key)
        key = key.lower()
        if not key or key in params:
            continue
        params[key] = _decoded(value) if ("%" in value or "+" in value) else value
    return params


def _decoded(text: str) -> str:
    """Percent-decoded; invalid UTF-8 ("%FF") decodes to U+FFFD, and so does a NUL ("%00")."""
    return storable(unquote_plus(text))
