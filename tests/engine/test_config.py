"""Config parsing: normalisation, round trip, and errors that name the field and the reason."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.engine import ConfigError, Engine, config_to_dict, parse_config
from gateway.engine.rules import MatchRule
from tests.engine.helpers import ADS, BUSINESS, config


def test_parses_normalises_and_defaults() -> None:
    cfg = config()
    cfg["sites"][0]["sources"][0]["numbers"] = ["(415) 555-0101", "415.555.0102", "+1 415 555 0103"]
    parsed = parse_config(cfg)
    site = parsed.sites[0]
    ads = site.sources[0]
    assert ads.numbers == tuple(ADS)
    assert ads.match == (MatchRule(preset="Google Ads"),)  # the name is a preset
    assert (ads.idle_timeout, ads.overflow, ads.match_window, ads.ring_timeout) == (
        1800.0, "share", 30 * 86400.0, 30.0)
    assert (ads.record, ads.whisper, ads.active) == (False, None, True)
    assert (site.stickiness_days, site.active, site.own_number) == (30.0, True, BUSINESS)
    assert site.sources[2].kind == "offline" and site.sources[2].match == ()


def test_round_trip_through_dict() -> None:
    cfg = config(match=[{"gclid": True}, {"utm_source": ["Google", "adwords"],
                                          "utm_medium": "CPC"}],
                 overflow="overflow_number", overflow_number="+14155550150",
                 whisper="Call from Google Ads", record=True, idle_timeout=900)
    parsed = parse_config(cfg)
    as_dict = config_to_dict(parsed)
    assert parse_config(as_dict) == parsed
    rules = as_dict["sites"][0]["sources"][0]["match"]
    assert rules == [{"gclid": True}, {"utm_source": ["google", "adwords"], "utm_medium": "cpc"}]
    assert as_dict["sites"][0]["sources"][0]["idle_timeout"] == 900
    assert "scoring" not in as_dict["sites"][0]["sources"][0]  # the default, "mixed"


def test_scoring_profile_is_kept_and_round_trips() -> None:
    parsed = parse_config(config(scoring="late-callers"))
    assert parsed.sites[0].sources[0].scoring == "late-callers"
    assert parsed.sites[0].sources[1].scoring == "mixed"
    as_dict = config_to_dict(parsed)
    assert as_dict["sites"][0]["sources"][0]["scoring"] == "late-callers"
    assert parse_config(as_dict) == parsed


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(config())
    target: Any = cfg
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return cfg


_DELETE = object()
SRC = ["sites", 0, "sources", 0]

ERRORS = [
    ([*SRC, "numbers", 1], "555", "sites[0].sources[0].numbers[1]", "invalid phone number"),
    ([*SRC, "numbers", 1], 4155550102, "sites[0].sources[0].numbers[1]", "expected a phone"),
    ([*SRC, "numbers", 2], "+14155550111", "sites[0].sources[1].numbers[0]", "duplicate number"),
    ([*SRC, "kind"], "radio", "sites[0].sources[0].kind", "unknown kind"),
    ([*SRC, "name"], _DELETE, "sites[0].sources[0].name", "missing required key"),
    ([*SRC, "forward_to"], _DELETE, "sites[0].sources[0].forward_to", "missing required key"),
    ([*SRC, "idle_timeout"], "30m", "sites[0].sources[0].idle_timeout", "expected a number"),
    ([*SRC, "idle_timeout"], -5, "sites[0].sources[0].idle_timeout", "greater than 0"),
    ([*SRC, "overflow"], "drop", "sites[0].sources[0].overflow", "unknown overflow policy"),
    ([*SRC, "overflow"], "overflow_number", "sites[0].sources[0].overflow_number", "required"),
    ([*SRC, "idle_timout"], 60, "sites[0].sources[0].idle_timout", "unknown key"),
    ([*SRC, "numbers"], [], "sites[0].sources[0].numbers", "at least one number"),
    ([*SRC, "numbers"], "+14155550101", "sites[0].sources[0].numbers", "expected a list"),
    ([*SRC, "record"], "yes", "sites[0].sources[0].record", "true or false"),
    ([*SRC, "scoring"], "b2b", "sites[0].sources[0].scoring", "unknown scoring profile"),
    ([*SRC, "scoring"], 3, "sites[0].sources[0].scoring", "expected"),
    ([*SRC, "forward_to"], ADS[0], "sites[0].sources[0].forward_to", "would loop"),
    ([*SRC, "match"], {"gclid": "yes"}, "sites[0].sources[0].match.gclid", "true or false"),
    ([*SRC, "match"], {"gclidd": True}, "sites[0].sources[0].match.gclidd", "unknown key"),
    ([*SRC, "match"], {"preset": "Yahoo"}, "sites[0].sources[0].match.preset", "one of"),
    ([*SRC, "match"], [{"gclid": True}, {"referrer": "sometimes"}],
     "sites[0].sources[0].match[1].referrer", "one of"),
    ([*SRC, "match"], {"referrer_host": "http://x"}, "sites[0].sources[0].match.referrer_host",
     "host name"),
    (["sites", 0, "sources", 2, "match"], {"gclid": True}, "sites[0].sources[2].match",
     "offline sources"),
    (["sites", 0, "key"], "Acme!", "sites[0].key", "a-z"),
    (["sites", 0, "key"], _DELETE, "sites[0].key", "missing required key"),
    (["sites", 0, "allowed_origins"], ["acme.test"], "sites[0].allowed_origins[0]", "origin"),
    (["sites", 0, "stickiness_days"], True, "sites[0].stickiness_days", "number of days"),
    (["sites", 0, "sources"], {"name": "x"}, "sites[0].sources", "expected a list"),
    (["sites", 0], "acme", "sites[0]", "expected a table"),
    (["sitez"], [], "sitez", "unknown key"),
]


@pytest.mark.parametrize(("path", "value", "field", "reason"), ERRORS,
                         ids=[e[2] + ":" + e[3] for e in ERRORS])
def test_errors_name_the_field(path: list[Any], value: Any, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_broken(path, value))
    assert caught.value.field == field
    assert reason in caught.value.message
    assert caught.value.status_hint == 422 and caught.value.code == "invalid_config"


def test_online_source_without_rules_is_rejected() -> None:
    cfg = config(name="Spring campaign")
    with pytest.raises(ConfigError, match="needs `match`") as caught:
        parse_config(cfg)
    assert caught.value.field == "sites[0].sources[0].match"


def test_duplicate_site_key_and_source_name() -> None:
    cfg = config()
    cfg["sites"].append(copy.deepcopy(cfg["sites"][0]))
    with pytest.raises(ConfigError) as caught:
        parse_config(cfg)
    assert caught.value.field == "sites[1].key" and "duplicate site key" in caught.value.message
    cfg = config()
    cfg["sites"][0]["sources"][1]["name"] = "Google Ads"
    with pytest.raises(ConfigError) as caught:
        parse_config(cfg)
    assert caught.value.field == "sites[0].sources[1].name"


def test_duplicate_number_across_sites() -> None:
    cfg = config()
    other = {"key": "beta", "swap_targets": [BUSINESS], "sources": [
        {"name": "Direct", "kind": "online", "forward_to": BUSINESS, "numbers": [ADS[1]]}]}
    cfg["sites"].append(other)
    with pytest.raises(ConfigError) as caught:
        parse_config(cfg)
    assert caught.value.field == "sites[1].sources[0].numbers[0]"
    assert "sites[0].sources[0].numbers[1]" in caught.value.message


def test_site_needs_an_own_number() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"sites": [{"key": "bare"}]})
    assert caught.value.field == "sites[0].swap_targets"


def test_engine_rejects_invalid_config_and_reconfigure_keeps_the_old_one() -> None:
    with pytest.raises(ConfigError):
        Engine.from_config({"sites": "acme"})
    e = Engine.from_config(config(), seed=1)
    with pytest.raises(ConfigError):
        e.reconfigure(_broken([*SRC, "kind"], "radio"))
    assert e.site("acme").sources[0].kind == "online"
