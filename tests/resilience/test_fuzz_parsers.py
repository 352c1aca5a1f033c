"""Property-based fuzzing of the engine's text parsers: landing URL and referrer classification
(`gateway.engine.classify`) and phone numbers (`gateway.engine.phones`, `inputs.caller`).

Any text, surrogates and NUL included, up to the engine's length caps: no exception, results
with the documented shape, bounded time per call, and caches that stay within their sizes.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.engine import inputs
from gateway.engine.agents import AGENT_CACHE_SIZE, agent
from gateway.engine.classify import (
    HOST_CACHE_SIZE,
    Landing,
    _cached_host,
    classify,
    compile_match,
    parse_landing,
)
from gateway.engine.errors import InvalidInput
from gateway.engine.phones import MAX_NUMBER_LENGTH, PARSE_CACHE_SIZE, national, parse_e164
from gateway.engine.rules import CLICK_IDS, PRESET_NAMES, MatchRule
from tests.resilience.conftest import properties
from tests.sip import test_fuzz as sip_fuzz

PARSE_BUDGET_S = 0.1  # one parse at the length caps: ~100x its usual cost, far below a stall
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
OWN_HOSTS = ("acme.test", "acme-cdn.test")

ANY_CHAR = st.characters(codec=None, exclude_categories=())
# Pieces that matter to the URL grammar, so generated text hits the interesting paths.
URL_PIECES = st.sampled_from([
    "https://", "http://", "//", "/", "?", "&", "=", "#", "%", "%00", "%2", "%zz", "+", "@", ":",
    "[", "]", "[::1]", "\\", ".", "www.", "google", ".co.uk", "acme.test", "gclid", "utm_source",
    "utm_medium=cpc", "fbclid=", "\x00", "\ud800", " ", "\t", "GCLID", "ＧＯＯＧＬＥ",
])
URLISH = st.lists(URL_PIECES | st.text(ANY_CHAR, max_size=8), max_size=40).map("".join)
TEXT = URLISH | st.text(ANY_CHAR, max_size=300)
# Adversarial shapes at the engine's 4096-character cap: many parameters, escapes, labels.
HUGE = st.sampled_from([
    "https://acme.test/?" + "&".join(f"k{i}=%41%42" for i in range(400)),
    "https://acme.test/?" + "%" * 4000,
    "https://acme.test/?" + "&" * 4000,
    "https://" + "a." * 2000 + "google.com/",
    "https://www.google." + "co." * 1300 + "uk/",
    "https://" + "google" * 680 + "/",
    "x" * 4096,
])

# A rule of every kind, so that every predicate of `compile_rule` runs on fuzzed landings.
SOURCES = (
    ("host", MatchRule(referrer_host=("google.*", "bing.com", "facebook.com"))),
    ("utm", MatchRule(utm_source=("google", "newsletter"), utm_medium=("cpc", "email"))),
    ("param", MatchRule(landing_param=("promo", "ref=partner"))),
    ("external", MatchRule(referrer="external", tagged=False)),
    ("none", MatchRule(referrer="none")),
    ("noclick", MatchRule(gclid=False, msclkid=False, fbclid=False)),
    ("preset", MatchRule(preset="Email")),
)
MATCHERS = tuple((name, compile_match((rule,))) for name, rule in SOURCES)


def check_landing(url: str, referrer: str | None) -> None:
    started = time.perf_counter()
    landing = parse_landing(url, referrer, OWN_HOSTS)
    host = landing.referrer_host
    source = classify(MATCHERS, landing)
    preset, external, tagged = landing.preset, landing.external, landing.tagged
    attribution = landing.attribution()
    assert time.perf_counter() - started < PARSE_BUDGET_S
    assert source is None or source in dict(SOURCES)
    assert preset is None or preset in PRESET_NAMES
    assert isinstance(external, bool) and isinstance(tagged, bool)
    if host is not None:
        assert host and host == host.lower() and not host.endswith(".")
        assert not set(host) & set("/?#@\\")
    if referrer is None:
        assert host is None and not external
    assert all(key == key.lower() for key in landing.params)
    assert list(attribution) == sorted(attribution)
    for key, value in attribution:
        assert value and landing.params[key] == value
        assert key in CLICK_IDS or key.startswith("utm_")
    if any(landing.params.get(k) for k in ("gclid", "gbraid", "wbraid")):
        assert preset == "Google Ads"  # the first row of the preset table wins


def check_fragment(url: str, fragment: str) -> None:
    """What follows "#" never changes the parameters (browsers do not send it)."""
    base = url.partition("#")[0]
    assert parse_landing(base + "#" + fragment, None, ()).params == \
        parse_landing(base, None, ()).params


@properties(400)
@given(url=TEXT, referrer=st.none() | TEXT)
def test_landings_parse_and_classify(url: str, referrer: str | None) -> None:
    check_landing(url, referrer)


@properties(100)
@given(url=HUGE, referrer=st.none() | HUGE)
def test_landings_at_the_length_cap_stay_fast(url: str, referrer: str | None) -> None:
    check_landing(url, referrer)


@properties(200)
@given(url=TEXT, fragment=TEXT)
def test_fragment_is_ignored(url: str, fragment: str) -> None:
    check_fragment(url, fragment)


@pytest.mark.resilience
@properties(50_000)
@given(url=TEXT, referrer=st.none() | TEXT)
def test_landings_parse_and_classify_long(url: str, referrer: str | None) -> None:
    check_landing(url, referrer)


def test_host_and_agent_caches_stay_bounded() -> None:
    """Distinct referrers and user agents from a crawler or an attacker do not grow memory."""
    for i in range(HOST_CACHE_SIZE * 3):
        Landing("https://acme.test/", f"https://r{i}.example/", ()).referrer_host  # noqa: B018
    for i in range(AGENT_CACHE_SIZE * 3):
        agent(f"Mozilla/5.0 fuzz/{i}")
    assert _cached_host.cache_info().currsize <= HOST_CACHE_SIZE
    assert agent.cache_info().currsize <= AGENT_CACHE_SIZE


# -- phone numbers ---------------------------------------------------------------------------

VALID = ("+14155550101", "+18005550100", "+442071838750", "+61293744000", "+4930901820")
NUMBER_PIECES = [*"0123456789+()-. /x#*,;ext", "\x00", "\ud800", "１", "٣", "²", "tel:"]
DIGITISH = st.lists(st.sampled_from(NUMBER_PIECES) | st.text(ANY_CHAR, max_size=3),
                    max_size=40).map("".join)


def check_number(raw: str) -> None:
    started = time.perf_counter()
    e164 = parse_e164(raw)
    assert time.perf_counter() - started < PARSE_BUDGET_S
    if e164 is None:
        return
    assert E164.match(e164), e164
    assert len(raw) <= MAX_NUMBER_LENGTH
    assert parse_e164(e164) == e164  # E.164 parses to itself
    assert national(e164)


def check_caller(raw: str) -> None:
    if len(raw) > inputs.MAX_CALLER_LENGTH:
        with pytest.raises(InvalidInput) as caught:
            inputs.caller(raw)
        assert caught.value.field == "caller"
        return
    caller = inputs.caller(raw)
    assert caller is None or E164.match(caller)


@properties(500)
@given(raw=DIGITISH | st.text(ANY_CHAR, max_size=100))
def test_any_text_parses_to_e164_or_none(raw: str) -> None:
    check_number(raw)
    check_caller(raw)


@pytest.mark.resilience
@properties(50_000)
@given(raw=DIGITISH | st.text(ANY_CHAR, max_size=100))
def test_any_text_parses_to_e164_or_none_long(raw: str) -> None:
    check_number(raw)
    check_caller(raw)


@properties(200)
@given(number=st.sampled_from(VALID), seps=st.lists(st.sampled_from(["", " ", "-", ".", "(",
                                                                     ")", "/"]),
                                                    min_size=16, max_size=16))
def test_a_number_written_any_way_is_the_same_number(number: str, seps: list[str]) -> None:
    digits = number[1:]
    written = "+" + "".join(d + s for d, s in zip(digits, seps, strict=False))
    assert parse_e164(written) == number


@pytest.mark.parametrize("raw", ["1" * 10_000_000, "+1" + " " * 5_000_000, "x" * 65])
def test_huge_number_text_is_refused_quickly(raw: str) -> None:
    started = time.perf_counter()
    assert parse_e164(raw) is None
    assert time.perf_counter() - started < PARSE_BUDGET_S


def test_parse_cache_is_bounded() -> None:
    """Callers' numbers are parsed through an LRU cache: bounded, whatever callers dial in
    (filling it takes 65,536 parses; its bound is what matters)."""
    assert parse_e164.cache_info().maxsize == PARSE_CACHE_SIZE
    for i in range(1000):
        parse_e164(f"+1415{i:07d}")
    assert parse_e164.cache_info().currsize <= PARSE_CACHE_SIZE


# The SIP codec and transaction layer: the default suite runs 200 examples of each
# (tests/sip/test_fuzz.py); these are the long runs of the same properties.
@pytest.mark.resilience
@properties(20_000)
@given(st.binary(max_size=2048))
def test_sip_random_bytes_long(data: bytes) -> None:
    sip_fuzz.check_parse(data)


@pytest.mark.resilience
@properties(50_000)
@given(sip_fuzz.mutated())
def test_sip_mutated_messages_long(data: bytes) -> None:
    sip_fuzz.check_parse(data)


@pytest.mark.resilience
@properties(10_000)
@given(st.lists(sip_fuzz.mutated(), min_size=1, max_size=5))
def test_sip_layer_never_raises_long(datagrams: list[bytes]) -> None:
    sip_fuzz.run_layer(datagrams)


@pytest.mark.resilience
@properties(10_000)
@given(st.lists(sip_fuzz.mutated(), min_size=1, max_size=3), st.integers(1, 64))
def test_sip_stream_parser_long(messages: list[bytes], chunk: int) -> None:
    sip_fuzz.feed_stream(messages, chunk)
