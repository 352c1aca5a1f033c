"""Source classification: the preset table, custom rules, precedence, devices, hostile input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.engine import Engine, InvalidInput
from gateway.engine.agents import agent
from gateway.engine.classify import parse_landing
from gateway.engine.rules import PRESET_NAMES
from tests.engine.helpers import BUSINESS, DESKTOP, GOOGLEBOT, PHONE


def all_presets(**site: Any) -> dict[str, Any]:
    """A site with one online source per preset, in the table's order unless reordered."""
    sources = [{"name": name, "kind": "online", "forward_to": BUSINESS,
                "numbers": [f"+1415555{i:02d}{k}0" for k in range(2)]}
               for i, name in enumerate(PRESET_NAMES)]
    return {"sites": [{"key": "acme", "swap_targets": [BUSINESS],
                       "allowed_origins": ["https://acme.test", "https://shop.acme-cdn.test"],
                       "sources": sources} | site]}


PRESET_CASES = [
    ("https://acme.test/?gclid=Cj0KCQ", "https://www.google.com/", "Google Ads"),
    ("https://acme.test/?gbraid=0AAAAA", None, "Google Ads"),
    ("https://acme.test/?wbraid=CkwKCA", "https://www.google.com/", "Google Ads"),
    ("https://acme.test/?utm_source=Google&utm_medium=CPC", None, "Google Ads"),
    ("https://acme.test/?utm_source=google&utm_medium=paid", "https://x.test/", "Google Ads"),
    ("https://acme.test/?msclkid=4f2c", "https://www.bing.com/", "Bing Ads"),
    ("https://acme.test/?utm_source=bing&utm_medium=ppc", None, "Bing Ads"),
    ("https://acme.test/?fbclid=IwAR3", None, "Facebook"),
    ("https://acme.test/", "https://l.facebook.com/l.php?u=x", "Facebook"),
    ("https://acme.test/", "https://m.facebook.com/", "Facebook"),
    ("https://acme.test/?utm_medium=email&utm_source=june", None, "Email"),
    ("https://acme.test/?utm_medium=email", "https://mail.google.com/", "Email"),
    ("https://acme.test/", "https://www.google.com/", "Google Organic"),
    ("https://acme.test/", "https://www.google.co.uk/search", "Google Organic"),
    ("https://acme.test/", "https://google.de/", "Google Organic"),
    ("https://acme.test/?gclid=", "https://www.google.com.au/", "Google Organic"),
    ("https://acme.test/", "https://www.bing.com/search?q=plumber", "Bing Organic"),
    ("https://acme.test/", "https://cn.bing.com/", "Bing Organic"),
    ("https://acme.test/", "https://blog.example.org/post", "Referral"),
    ("https://acme.test/", "https://google.evil.com/", "Referral"),
    ("https://acme.test/", "https://notgoogle.com/", "Referral"),
    ("https://acme.test/", "https://mail.google.com/mail/u/0/", "Referral"),
    ("https://acme.test/?utm_source=partner", "https://partner.test/", "Referral"),
    ("https://acme.test/", None, "Direct"),
    ("https://acme.test/pricing?page=2", "", "Direct"),
    ("https://acme.test/", "https://acme.test/services", "Direct"),
    ("https://www.acme.test/", "https://acme.test/", "Direct"),
    ("https://acme.test/", "https://blog.acme.test/", "Direct"),
    ("https://acme.test/", "https://shop.acme-cdn.test/cart", "Direct"),
]


@pytest.mark.parametrize(("url", "referrer", "source"), PRESET_CASES)
def test_presets(url: str, referrer: str | None, source: str) -> None:
    e = Engine.from_config(all_presets(), seed=1)
    v = e.visit(site="acme", url=url, referrer=referrer, user_agent=DESKTOP, at=1.0)
    assert v.source == source
    assert v.session is not None


@pytest.mark.parametrize(("url", "referrer", "source"), PRESET_CASES)
def test_presets_do_not_depend_on_config_order(url: str, referrer: str | None,
                                               source: str) -> None:
    cfg = all_presets()
    cfg["sites"][0]["sources"].reverse()
    e = Engine.from_config(cfg, seed=1)
    assert e.visit(site="acme", url=url, referrer=referrer, user_agent=DESKTOP,
                   at=1.0).source == source


def test_tagged_landing_without_referrer_is_not_direct() -> None:
    e = Engine.from_config(all_presets(), seed=1)
    v = e.visit(site="acme", url="https://acme.test/?utm_source=newsletter&utm_medium=social",
                referrer=None, user_agent=DESKTOP, at=1.0)
    assert (v.session, v.source, v.number) == (None, None, BUSINESS)
    assert e.drain() == []


def custom(*sources: dict[str, Any]) -> Engine:
    base = 4155550300
    full = [{"kind": "online", "forward_to": BUSINESS, "numbers": [f"+1{base + i}"]} | s
            for i, s in enumerate(sources)]
    return Engine.from_config({"sites": [{"key": "acme", "swap_targets": [BUSINESS],
                                          "sources": full}]}, seed=1)


def source_of(e: Engine, url: str, referrer: str | None = None) -> str | None:
    return e.visit(site="acme", url=url, referrer=referrer, user_agent=DESKTOP, at=1.0).source


def test_custom_rules_and_first_match_wins() -> None:
    e = custom(
        {"name": "Spring", "match": {"utm_campaign": ["spring-sale", "SPRING"]}},
        {"name": "Coupon", "match": {"landing_param": "coupon"}},
        {"name": "Partner X", "match": {"landing_param": "ref=partner-x"}},
        {"name": "Yelp", "match": [{"referrer_host": "yelp.com"}, {"utm_source": "yelp"}]},
        {"name": "Google Ads", "match": {"preset": "Google Ads", "utm_campaign": "brand"}},
        {"name": "Anything else", "match": {}},
    )
    assert source_of(e, "https://a.test/?utm_campaign=Spring&gclid=x") == "Spring"
    assert source_of(e, "https://a.test/?Coupon=&gclid=x") == "Coupon"
    assert source_of(e, "https://a.test/?ref=Partner-X") == "Partner X"
    assert source_of(e, "https://a.test/?ref=partner-y") == "Anything else"
    assert source_of(e, "https://a.test/", "https://m.yelp.com/biz/acme") == "Yelp"
    assert source_of(e, "https://a.test/", "https://notyelp.com/") == "Anything else"
    assert source_of(e, "https://a.test/?utm_source=YELP") == "Yelp"
    assert source_of(e, "https://a.test/?gclid=x&utm_campaign=brand") == "Google Ads"
    assert source_of(e, "https://a.test/?gclid=x&utm_campaign=generic") == "Anything else"


def test_click_id_false_and_referrer_kinds() -> None:
    e = custom(
        {"name": "Organic only", "match": {"referrer_host": "google.*", "gclid": False}},
        {"name": "Other sites", "match": {"referrer": "external"}},
        {"name": "Typed in", "match": {"referrer": "none", "tagged": False}},
    )
    assert source_of(e, "https://a.test/", "https://www.google.fr/") == "Organic only"
    assert source_of(e, "https://a.test/?gclid=x", "https://www.google.fr/") == "Other sites"
    assert source_of(e, "https://a.test/", "https://a.test/other") == "Typed in"
    assert source_of(e, "https://a.test/?utm_source=x") is None


def test_unmatched_landing_gets_site_number_and_no_session() -> None:
    e = custom({"name": "Google Ads"})
    v = e.visit(site="acme", url="https://a.test/", referrer=None, user_agent=DESKTOP, at=1.0)
    assert (v.session, v.source, v.number, v.formatted) == (None, None, BUSINESS,
                                                            "(800) 555-0100")
    assert v.visitor.startswith("v_")
    assert e.drain() == []


def test_inactive_source_is_skipped_and_inactive_site_untracked() -> None:
    e = custom({"name": "Paused", "match": {}, "active": False}, {"name": "Live", "match": {}})
    assert source_of(e, "https://a.test/") == "Live"
    cfg = all_presets(active=False)
    e = Engine.from_config(cfg, seed=1)
    assert source_of(e, "https://acme.test/?gclid=x") is None


def test_attribution_keeps_click_ids_and_utm() -> None:
    e = custom({"name": "Google Ads"})
    e.visit(site="acme", url="https://a.test/p?utm_term=pipes&gclid=abc&x=1&utm_source=google"
            "&utm_medium=cpc&utm_campaign=Spring%20Sale&fbclid=", referrer=None,
            user_agent=DESKTOP, at=1.0)
    (started,) = e.drain()
    assert started.attribution == (  # type: ignore[union-attr]
        ("gclid", "abc"), ("utm_campaign", "Spring Sale"), ("utm_medium", "cpc"),
        ("utm_source", "google"), ("utm_term", "pipes"))


AGENTS = [
    (GOOGLEBOT, True, False),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True, False),
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
     "like Gecko) Chrome/126.0 Mobile Safari/537.36 (compatible; Googlebot/2.1)", True, True),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True, False),
    ("Mozilla/5.0 (compatible; Yahoo! Slurp)", True, False),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", True, False),
    ("", True, False),
    ("   ", True, False),
    (DESKTOP, False, False),
    (PHONE, False, True),
    ("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
     False, True),
    ("Mozilla/5.0 (iPad; CPU OS 12_2 like Mac OS X) AppleWebKit/605.1.15", False, True),
    ("Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 Mobile Safari/537.36",
     False, True),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/126.0.0.0 Safari/537.36", False, False),
]


@pytest.mark.parametrize(("ua", "bot", "mobile"), AGENTS)
def test_agents(ua: str, bot: bool, mobile: bool) -> None:
    assert agent(ua) == (bot, mobile)


def test_bots_get_site_number_and_no_records() -> None:
    e = custom({"name": "Google Ads"})
    for ua in (GOOGLEBOT, "", None):
        v = e.visit(site="acme", url="https://a.test/?gclid=x", referrer=None, user_agent=ua,
                    visitor="v_returning_visitor", at=1.0)
        assert (v.session, v.number, v.visitor) == (None, BUSINESS, "v_returning_visitor")
    assert e.drain() == []


HOSTILE = [
    "http://[::1", "http://[zz]:99999/?gclid=x", "https://acme.test:notaport/?gclid=1",
    "javascript:alert(1)", "\x00\x01\x02?gclid=\x00", "?&&&===&=&gclid", "%", "?%zz=%zz",
    "https://acme.test/?" + "&".join(f"k{i}=v" for i in range(400)), "//?#?#", "\u202e?gclid=ü",
    "https://user:pw@acme.test:8080/?gclid=x#frag", "http://" + "a." * 300 + "test/",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_urls_and_referrers_are_classified_or_invalid(text: str) -> None:
    e = Engine.from_config(all_presets(), seed=1)
    e.visit(site="acme", url=text, referrer=text, user_agent=DESKTOP, at=1.0)
    e.visit(site="acme", url="https://acme.test/", referrer=text, user_agent=DESKTOP, at=2.0)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"url": "https://acme.test/?" + "x" * 5000}, "url"),
    ({"url": ""}, "url"),
    ({"url": 42}, "url"),
    ({"referrer": "https://x.test/" + "y" * 5000}, "referrer"),
    ({"referrer": b"https://x.test/"}, "referrer"),
    ({"user_agent": "Mozilla/5.0 " + "z" * 3000}, "user_agent"),
    ({"visitor": ""}, "visitor"),
    ({"visitor": 12345678}, "visitor"),
    ({"visitor": "v_" + "x" * 200}, "visitor"),
    ({"visitor": "v_bad id with spaces"}, "visitor"),
    ({"at": float("nan")}, "at"),
    ({"at": "now"}, "at"),
    ({"site": None}, "site"),
])
def test_invalid_visit_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    e = Engine.from_config(all_presets(), seed=1)
    args: dict[str, Any] = {"site": "acme", "url": "https://acme.test/", "referrer": None,
                            "user_agent": DESKTOP, "visitor": None, "at": 1.0} | kwargs
    with pytest.raises(InvalidInput) as caught:
        e.visit(**args)
    assert caught.value.field == field and caught.value.status_hint == 422


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(url=st.text(max_size=300), referrer=st.one_of(st.none(), st.text(max_size=300)))
def test_any_text_is_classified_or_invalid(url: str, referrer: str | None) -> None:
    e = Engine.from_config(all_presets(), seed=1)
    try:
        v = e.visit(site="acme", url=url, referrer=referrer, user_agent=DESKTOP, at=1.0)
    except InvalidInput:
        return
    assert v.number


def test_landing_parser_internals() -> None:
    landing = parse_landing("HTTPS://Acme.Test./?GCLID=a%20b&gclid=second&q=1+2#x?y=z",
                            "https://WWW.Google.COM./", ())
    assert landing.params == {"gclid": "a b", "q": "1 2"}
    assert landing.referrer_host == "www.google.com" and landing.external
    assert landing.preset == "Google Ads"
