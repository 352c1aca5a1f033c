"""The engine's records hold only text Postgres can store: NUL and lone surrogates become
U+FFFD, in percent-decoded landing parameters and in the text arguments (URLs, user agent,
call ids) alike, so that ids stay consistent between the record and later lookups."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.engine import CallRecord, Engine, SessionStarted
from gateway.engine.classify import parse_landing
from gateway.web.validate import plain  # what Postgres stores as text
from tests.engine.helpers import ADS, DESKTOP, config


@pytest.mark.parametrize(("query", "params"), [
    ("gclid=g&utm_source=%00", {"gclid": "g", "utm_source": "\ufffd"}),
    ("utm_source=a%00b+c", {"utm_source": "a\ufffdb c"}),
    ("utm_%00x=1", {"utm_\ufffdx": "1"}),
    ("utm_term=%FF%FE", {"utm_term": "\ufffd\ufffd"}),  # invalid UTF-8: already replaced
    ("utm_term=caf%C3%A9", {"utm_term": "caf\u00e9"}),  # valid UTF-8: decoded as ever
])
def test_decoded_parameters_are_storable(query: str, params: dict[str, str]) -> None:
    assert parse_landing(f"https://acme.test/?{query}", None, ()).params == params


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet=st.sampled_from("%0aF8Dd=&+u_tm"), max_size=40))
def test_any_query_gives_storable_attribution(query: str) -> None:
    attribution = parse_landing(f"https://acme.test/?utm_x={query}", None, ()).attribution()
    assert all(plain(key) and plain(value) for key, value in attribution)


def test_a_nul_in_the_landing_query_is_recorded_cleaned() -> None:
    engine = Engine.from_config(config(), seed=3)
    engine.visit(site="acme", url="https://acme.test/?gclid=g&utm_source=%00",
                 user_agent=DESKTOP, at=1_800_000_000.0)
    (record,) = [r for r in engine.drain() if isinstance(r, SessionStarted)]
    assert dict(record.attribution) == {"gclid": "g", "utm_source": "\ufffd"}


@pytest.mark.parametrize(("kwargs", "kept"), [
    ({"url": "https://acme.test/\x00?gclid=g"}, {"landing_url": "https://acme.test/\ufffd?gclid=g"}),
    ({"url": "https://acme.test/\udcff?gclid=g"}, {"landing_url": "https://acme.test/\ufffd?gclid=g"}),
    ({"url": "https://acme.test/?gclid=\x00g"}, {"attribution": (("gclid", "\ufffdg"),)}),
    ({"referrer": "https://www.google.com/\x00"}, {"referrer": "https://www.google.com/\ufffd"}),
    ({"user_agent": DESKTOP + "\udc80"}, {"user_agent": DESKTOP + "\ufffd"}),
])
def test_visit_text_is_recorded_storable(kwargs: dict[str, Any], kept: dict[str, Any]) -> None:
    engine = Engine.from_config(config(), seed=3)
    args: dict[str, Any] = {"site": "acme", "url": "https://acme.test/?gclid=g",
                            "user_agent": DESKTOP, "at": 1.0} | kwargs
    engine.visit(**args)
    (record,) = [r for r in engine.drain() if isinstance(r, SessionStarted)]
    assert {name: getattr(record, name) for name in kept} == kept


@pytest.mark.parametrize("call_id", ["CA\x00", "CA\udcff"])
def test_a_call_id_is_recorded_storable_and_found_again(call_id: str) -> None:
    engine = Engine.from_config(config(), seed=3)
    first = engine.call(to=ADS[0], caller=None, call_id=call_id, at=1.0)
    (record,) = [r for r in engine.drain() if isinstance(r, CallRecord)]
    assert record.call_id == first.call_id == "CA\ufffd"
    engine.call(to=ADS[0], caller=None, call_id=call_id, at=2.0)  # a retry: the same call
    assert engine.drain() == []


def test_valid_unicode_is_kept() -> None:
    engine = Engine.from_config(config(), seed=3)
    engine.visit(site="acme", url="https://acme.test/caf\u00e9?gclid=\u2603",
                 user_agent=DESKTOP, at=1.0)
    (record,) = [r for r in engine.drain() if isinstance(r, SessionStarted)]
    assert record.landing_url.endswith("caf\u00e9?gclid=\u2603")
