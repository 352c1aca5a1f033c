"""The engine facade: determinism, ids, records, reads, errors."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from gateway.engine import (
    ConfigError,
    Engine,
    EngineError,
    InvalidInput,
    NumberInfo,
    SessionEvent,
    SessionStarted,
    UnknownCall,
    UnknownNumber,
    UnknownSession,
    UnknownSite,
    Visit,
)
from tests.engine.helpers import (
    ADS,
    BILLBOARD,
    BUSINESS,
    DESKTOP,
    GOOGLEBOT,
    ORGANIC,
    PHONE,
    ad_visit,
    config,
    engine,
)

LANDINGS = [
    ("https://acme.test/?gclid=a", "https://www.google.com/"),
    ("https://acme.test/", "https://www.google.com/"),
    ("https://acme.test/", None),
]


def workload(e: Engine, seed: int) -> list[Any]:
    """A random but reproducible mix of visits, activity and calls; returns every answer."""
    rng = random.Random(seed)
    out: list[Any] = []
    visitors: list[str] = []
    sessions: list[str] = []
    t = 0.0
    for i in range(400):
        t += rng.expovariate(1 / 120)
        roll = rng.random()
        if roll < 0.6 or not sessions:
            url, ref = rng.choice(LANDINGS)
            visitor = rng.choice(visitors) if visitors and rng.random() < 0.3 else None
            v = e.visit(site="acme", url=url, referrer=ref, user_agent=rng.choice([PHONE, DESKTOP]),
                        visitor=visitor, at=t)
            visitors.append(v.visitor)
            if v.session:
                sessions.append(v.session)
            out.append(v)
        elif roll < 0.9:
            kind = rng.choice(["pageview", "ping", "click_to_call", "hidden"])
            out.append(e.activity(session=rng.choice(sessions), kind=kind, at=t))
        else:
            to = rng.choice([*ADS, *ORGANIC, BILLBOARD])
            out.append(e.call(to=to, caller=f"+1415555{rng.randrange(20):04d}",
                              call_id=f"CA{i}", at=t))
        out.extend(e.drain())
    out.append(e.pool_stats(at=t))
    return out


def test_same_config_seed_and_calls_give_identical_results() -> None:
    first = workload(engine(seed=11), seed=3)
    second = workload(engine(seed=11), seed=3)
    assert first == second
    assert any(isinstance(x, SessionStarted) for x in first)


def test_a_different_seed_changes_ids_only() -> None:
    def numbers(out: list[Any]) -> list[str]:
        return [x.number for x in out if isinstance(x, Visit)]
    assert numbers(workload(engine(seed=1), seed=3)) == numbers(workload(engine(seed=2), seed=3))


def test_live_ids_are_random_and_unguessable() -> None:
    a, b = Engine.from_config(config()), Engine.from_config(config())
    va, vb = ad_visit(a, 0.0), ad_visit(b, 0.0)
    for value, prefix in ((va.visitor, "v_"), (va.session, "s_")):
        assert re.fullmatch(prefix + r"[A-Za-z0-9_-]{22}", value or "")
    assert va.visitor != vb.visitor and va.session != vb.session


def test_custom_id_factory() -> None:
    counter = iter(range(1000))
    e = Engine.from_config(config(), ids=lambda prefix: f"{prefix}{next(counter):08d}")
    v = ad_visit(e, 0.0)
    assert (v.session, v.visitor) == ("s_00000000", "v_00000001")


def test_records_are_drained_in_order_and_cleared() -> None:
    e = engine()
    v = e.visit(site="acme", url="https://acme.test/landing?gclid=zz&utm_source=google",
                referrer="", user_agent=PHONE, visitor="v_kept_by_client", at=5.0)
    e.activity(session=v.session, kind="hidden", at=6.0)
    e.activity(session=v.session, kind="ping", at=7.0)
    records = e.drain()
    assert records == [
        SessionStarted(v.session, "v_kept_by_client", "acme", "Google Ads", ADS[0], 5.0,
                       "https://acme.test/landing?gclid=zz&utm_source=google", None, PHONE, True,
                       False, True, (("gclid", "zz"), ("utm_source", "google"))),
        SessionEvent(v.session, "hidden", 6.0),
        SessionEvent(v.session, "ping", 7.0),
    ]  # type: ignore[arg-type]
    assert e.drain() == []


def test_activity_errors() -> None:
    e = engine()
    v = ad_visit(e, 0.0)
    with pytest.raises(UnknownSession) as unknown:
        e.activity(session="s_unknown_session_1", kind="ping", at=1.0)
    assert (unknown.value.status_hint, unknown.value.code) == (404, "unknown_session")
    with pytest.raises(InvalidInput) as bad_kind:
        e.activity(session=v.session, kind="scroll", at=1.0)  # type: ignore[arg-type]
    assert bad_kind.value.field == "kind"
    with pytest.raises(InvalidInput) as bad_id:
        e.activity(session="x" * 500, kind="ping", at=1.0)
    assert bad_id.value.field == "session"
    with pytest.raises(InvalidInput):
        e.activity(session=None, kind="ping", at=1.0)  # type: ignore[arg-type]


def test_sites_lookup_and_site_number() -> None:
    e = engine()
    site = e.site("acme")
    assert (site.swap_targets, site.allowed_origins) == ((BUSINESS,), ("https://acme.test",))
    with pytest.raises(UnknownSite) as caught:
        e.site("nope")
    assert caught.value.status_hint == 404
    with pytest.raises(UnknownSite):
        e.visit(site="nope", url="https://x.test/", user_agent=DESKTOP, at=0.0)
    own = e.site_number("acme", visitor="v_rate_limited_1")
    assert own == Visit("v_rate_limited_1", None, None, BUSINESS, "(800) 555-0100")
    assert e.site_number("acme").visitor.startswith("v_")
    assert e.drain() == []
    assert e.lookup("(415) 555-0199") == NumberInfo(BILLBOARD, "acme", "Billboard I-80",
                                                    "offline", BUSINESS, False, None, 30.0, True)
    assert e.visit(site="acme", url="https://acme.test/?gclid=1", user_agent=GOOGLEBOT,
                   at=1.0).session is None


def test_formatted_number_is_national() -> None:
    v = ad_visit(engine(), 0.0)
    assert (v.number, v.formatted) == (ADS[0], "(415) 555-0101")


@pytest.mark.parametrize(("error", "status", "code"), [
    (ConfigError("sites[0].key", "bad"), 422, "invalid_config"),
    (InvalidInput("url", "bad"), 422, "invalid"),
    (UnknownSite("x"), 404, "unknown_site"),
    (UnknownSession("s"), 404, "unknown_session"),
    (UnknownNumber("+1"), 404, "unknown_number"),
    (UnknownCall("c"), 404, "unknown_call"),
])
def test_errors_carry_status_and_code(error: EngineError, status: int, code: str) -> None:
    assert isinstance(error, EngineError)
    assert (error.status_hint, error.code) == (status, code)
    assert error.field and str(error)


def test_sessions_and_calls_counts() -> None:
    e = engine()
    ad_visit(e, 0.0)
    e.call(to=BILLBOARD, caller=None, call_id="CA-1", at=1.0)
    assert (e.sessions_count(), e.calls_count()) == (1, 1)
