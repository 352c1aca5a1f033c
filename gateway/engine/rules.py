"""Match rules: which landings belong to a source, and the built-in presets.

A source's `match` is a table of conditions that must all hold (AND), or a list of such tables
(any of them, OR). Conditions, each optional:

- `gclid`, `gbraid`, `wbraid`, `msclkid`, `fbclid` = true: the landing URL carries that click id
  (non-empty); = false: it does not;
- `utm_source`, `utm_medium`, `utm_campaign` = "x" or ["x", "y"]: the landing's UTM value is one
  of these (case-insensitive);
- `landing_param` = "foo" (the landing URL has a `foo` parameter) or "foo=bar" (with that value,
  case-insensitive); a list means all of them;
- `referrer_host` = "google.com" (the referrer's host is it or a subdomain of it), or "google.*"
  (google or www.google under any country domain: google.de, www.google.co.uk, but not
  mail.google.com); a list means any of them;
- `referrer` = "external" (a referrer outside the site) or "none" (no referrer, or the site's own);
- `tagged` = true/false: the landing carries any click id or utm_source/medium/campaign;
- `preset` = "Google Ads": the landing's built-in channel is this preset (see below).

Presets partition landings: every landing has at most one preset channel, the first row of
`PRESETS` it matches, so "Google Organic" never takes a Google Ads click that arrives with a
google.com referrer, whatever order the sources are configured in. Values are stored
lower-cased; config round trips keep that normalised form.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields

from gateway.engine.errors import ConfigError
from gateway.engine.fields import Fields, text

CLICK_IDS = ("gclid", "gbraid", "wbraid", "msclkid", "fbclid")  # ad platforms' click ids
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")  # the UTM keys rules can test
REFERRER_KINDS = ("external", "none")
# Mediums counted as paid search, as in GA4's "Paid Search" channel definition (cpc, ppc, paid*).
PAID_MEDIUMS = ("cpc", "ppc", "paid", "paidsearch")
_HOST = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*(\.\*)?$")
_PARAM = re.compile(r"^[A-Za-z0-9_.\-\[\]]{1,64}(=.{0,200})?$")


@dataclass(frozen=True, slots=True)
class MatchRule:
    """One AND-table of conditions (None: not tested). Values are lower-cased."""

    gclid: bool | None = None
    gbraid: bool | None = None
    wbraid: bool | None = None
    msclkid: bool | None = None
    fbclid: bool | None = None
    utm_source: tuple[str, ...] | None = None
    utm_medium: tuple[str, ...] | None = None
    utm_campaign: tuple[str, ...] | None = None
    landing_param: tuple[str, ...] | None = None
    referrer_host: tuple[str, ...] | None = None
    referrer: str | None = None
    tagged: bool | None = None
    preset: str | None = None


PRESETS: tuple[tuple[str, tuple[MatchRule, ...]], ...] = (
    ("Google Ads", (
        MatchRule(gclid=True), MatchRule(gbraid=True), MatchRule(wbraid=True),
        MatchRule(utm_source=("google",), utm_medium=PAID_MEDIUMS),
    )),
    ("Bing Ads", (
        MatchRule(msclkid=True), MatchRule(utm_source=("bing",), utm_medium=PAID_MEDIUMS),
    )),
    ("Facebook", (MatchRule(fbclid=True), MatchRule(referrer_host=("facebook.com",)))),
    ("Email", (MatchRule(utm_medium=("email",)),)),
    ("Google Organic", (MatchRule(referrer_host=("google.*",)),)),
    ("Bing Organic", (MatchRule(referrer_host=("bing.com",)),)),
    ("Referral", (MatchRule(referrer="external"),)),
    ("Direct", (MatchRule(referrer="none", tagged=False),)),
)
PRESET_NAMES = tuple(name for name, _ in PRESETS)
_RULE_KEYS = tuple(f.name for f in fields(MatchRule))


def parse_match(raw: object, path: str) -> tuple[MatchRule, ...]:
    """A config `match` value (a table, or a list of tables) as OR-ed rules."""
    if isinstance(raw, list | tuple):
        if not raw:
            raise ConfigError(path, "an empty list matches nothing; omit `match` instead")
        return tuple(parse_rule(item, f"{path}[{i}]") for i, item in enumerate(raw))
    return (parse_rule(raw, path),)


def parse_rule(raw: object, path: str) -> MatchRule:
    """One table of conditions; unknown keys and wrong types raise ConfigError."""
    f = Fields(raw, path)
    rule = MatchRule(
        gclid=_flag(f, "gclid"),
        gbraid=_flag(f, "gbraid"),
        wbraid=_flag(f, "wbraid"),
        msclkid=_flag(f, "msclkid"),
        fbclid=_flag(f, "fbclid"),
        utm_source=_values(f, "utm_source", _utm_value),
        utm_medium=_values(f, "utm_medium", _utm_value),
        utm_campaign=_values(f, "utm_campaign", _utm_value),
        landing_param=_values(f, "landing_param", _param_value),
        referrer_host=_values(f, "referrer_host", _host_value),
        referrer=_choice(f, "referrer", REFERRER_KINDS),
        tagged=_flag(f, "tagged"),
        preset=_choice(f, "preset", PRESET_NAMES),
    )
    f.done()
    return rule


def rule_to_dict(rule: MatchRule) -> dict[str, object]:
    """The config table of a rule (single values as strings, several as lists)."""
    out: dict[str, object] = {}
    for key in _RULE_KEYS:
        value = getattr(rule, key)
        if isinstance(value, tuple):
            out[key] = value[0] if len(value) == 1 else list(value)
        elif value is not None:
            out[key] = value
    return out


def _flag(f: Fields, key: str) -> bool | None:
    value = f.get(key)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f.at(key), "expected true or false")
    return value


def _choice(f: Fields, key: str, allowed: tuple[str, ...]) -> str | None:
    value = f.get(key)
    if value is None:
        return None
    if value not in allowed:
        raise ConfigError(f.at(key), f"expected one of {', '.join(map(repr, allowed))}")
    return str(value)


def _values(f: Fields, key: str, check: Callable[[object, str], str]) -> tuple[str, ...] | None:
    value = f.get(key)
    if value is None:
        return None
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise ConfigError(f.at(key), "an empty list matches nothing")
    path = f.at(key)
    return tuple(check(item, f"{path}[{i}]" if items is value else path)
                 for i, item in enumerate(items))


def _utm_value(value: object, path: str) -> str:
    return text(value, path).strip().lower()


def _param_value(value: object, path: str) -> str:
    item = text(value, path).strip()
    if not _PARAM.match(item):
        raise ConfigError(path, "expected a parameter name, or name=value")
    name, eq, wanted = item.partition("=")
    return f"{name.lower()}{eq}{wanted.lower()}"


def _host_value(value: object, path: str) -> str:
    host = text(value, path).strip().lower().rstrip(".")
    if not _HOST.match(host):
        raise ConfigError(path, "expected a host name such as google.com, or google.*")
    return host


def implicit_rules(name: str) -> tuple[MatchRule, ...]:
    """The rules of a source that has no `match`: its preset when its name is a preset's."""
    return (MatchRule(preset=name),) if name in PRESET_NAMES else ()

