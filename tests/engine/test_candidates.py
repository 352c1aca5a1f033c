"""The column path of a call (shown.py, candidates.py, the ranking in calls.py) against a plain
reference: one `Timeline` per candidate built from the sessions, `score` over those, a full sort.
Random traffic with returning visitors, every activity kind, repeated callers, overrides and a
reconfiguration; the likelihoods and the order must be identical, not merely close."""

from __future__ import annotations

import copy
import random
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from gateway.engine import Engine, SessionState
from gateway.engine import shown as shown_module
from gateway.engine.calls import MAX_LISTED_CANDIDATES
from gateway.engine.timelines import timeline
from scoring import vector
from scoring.features import CallContext
from scoring.model import score
from tests.engine.helpers import DESKTOP, PHONE, config, states_from_records


def reference(e: Engine, to: str, caller: str | None, at: float) -> tuple[list[Any], float | None]:
    """What `engine.call` must answer (before it runs): listed candidates and likelihood."""
    slot = e._numbers[to]
    source = slot.source
    visitors = source.site.visitors
    history = e._calls.history(source.site.key, caller)
    matched = Counter(c.visitor for c in history if c.visitor is not None)
    surest: dict[str, float] = {}
    for c in history:
        if c.visitor is not None:
            best = c.candidates[0][0] if c.candidates else None
            sure = 1.0 if c.likelihood is None or c.match != best else c.likelihood  # override: 1
            surest[c.visitor] = max(surest.get(c.visitor, 0.0), sure)
    sessions, timelines = [], []
    for s in slot.shown:
        if s.last_activity < at - source.window or s.started_at > at:
            continue
        latest = visitors.get(s.visitor)
        ordinal = s.ordinal if latest is None else latest.ordinal
        live = s.last_activity + source.idle > at
        sessions.append(s)
        t = timeline(s, live, matched.get(s.visitor, 0), ordinal)
        timelines.append(replace(t, caller_likelihood=surest[s.visitor]) if t.caller_matches
                         else t)
    if not sessions:
        return [], None
    ctx = CallContext(at, caller, source.idle, bool(history))
    likelihoods = score(ctx, timelines).likelihoods
    totals: dict[str, float] = {}
    for s, lik in zip(sessions, likelihoods, strict=True):
        totals[s.visitor] = totals.get(s.visitor, 0.0) + lik
    order = sorted(range(len(sessions)), key=lambda i: (
        -totals[sessions[i].visitor], -likelihoods[i], -sessions[i].last_activity,
        sessions[i].id))[:MAX_LISTED_CANDIDATES]
    listed = [(sessions[i].id, sessions[i].visitor, likelihoods[i]) for i in order]
    return listed, min(1.0, totals[sessions[order[0]].visitor])


class Traffic:
    """Random visits (some at the same instant: ties), activity, calls (each checked against
    `reference`) and overrides on one engine; the records it drained."""

    def __init__(self, rng: random.Random, numbers: list[str], kinds: tuple[str, ...]) -> None:
        self.rng, self.numbers, self.kinds = rng, numbers, kinds
        self.t, self.checked = 0.0, 0
        self.visitors: list[str] = []
        self.sessions: list[str] = []
        self.calls: list[str] = []  # call ids the current engine knows
        self.made = 0
        self.records: list[Any] = []
        self.callers = [f"+1415555{i:04d}" for i in range(12)] + [None]

    def run(self, e: Engine, steps: int, reconfigure: dict[str, Any] | None = None) -> None:
        for step in range(steps):
            self.step(e)
            if reconfigure is not None and step == steps // 2:
                e.reconfigure(reconfigure)
            self.records += e.drain()

    def step(self, e: Engine) -> None:
        rng = self.rng
        self.t += rng.expovariate(1 / 30.0) if rng.random() < 0.8 else 0.0
        r = rng.random()
        if r < 0.3:
            known = rng.choice(self.visitors) if self.visitors and rng.random() < 0.4 else None
            v = e.visit(site="acme", url="https://acme.test/?gclid=x", referrer=None,
                        user_agent=rng.choice([PHONE, DESKTOP]), visitor=known, at=self.t)
            self.visitors.append(v.visitor)
            if v.session:
                self.sessions.append(v.session)
        elif r < 0.8 and self.sessions:
            e.activity(session=rng.choice(self.sessions[-60:]), kind=rng.choice(self.kinds),
                       at=self.t - rng.uniform(0, 5))
        elif r < 0.97:
            to, caller = rng.choice(self.numbers), rng.choice(self.callers)
            at = self.t - rng.choice([0.0, 0.0, 40.0])
            expected, likelihood = reference(e, to, caller, at)
            call_id = f"CA{self.made}"
            self.made += 1
            c = e.call(to=to, caller=caller, call_id=call_id, at=at)
            assert [tuple(x) for x in c.candidates] == expected
            assert c.likelihood == likelihood
            self.calls.append(call_id)
            self.checked += 1
        elif self.calls and self.sessions:
            e.override(call_id=rng.choice(self.calls), session=rng.choice(self.sessions),
                       at=self.t)


# numpy weighs calls of at least `vector_min` candidates (`scoring.vector`), the loop the rest.
NUMPY_ALWAYS, LOOP_ALWAYS = 1, 10**9


@pytest.mark.parametrize(("seed", "pool", "kinds", "vector_min"), [
    (1, 1, ("ping", "pageview", "hidden", "click_to_call"), NUMPY_ALWAYS),
    (2, 2, ("ping", "pageview", "hidden", "click_to_call"), LOOP_ALWAYS),
    (3, 2, ("ping", "pageview"), NUMPY_ALWAYS),  # fewer features: more ties
    (4, 8, ("ping", "pageview"), LOOP_ALWAYS),  # rarely shared: returning visitors, nothing else
    (5, 3, ("ping", "pageview", "hidden", "click_to_call"), vector.MIN_CANDIDATES),
])
def test_calls_match_the_timeline_reference(seed: int, pool: int, kinds: tuple[str, ...],
                                             vector_min: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shown_module, "COMPACT_AFTER", 8)  # compact often, too
    monkeypatch.setattr(vector, "MIN_CANDIDATES", vector_min)
    numbers = [f"+1415555{101 + i:04d}" for i in range(pool)]
    cfg = config(numbers=numbers, idle_timeout=300, match_window=2 * 86400)
    traffic = Traffic(random.Random(seed), numbers, kinds)
    e = Engine.from_config(copy.deepcopy(cfg), seed=seed)
    traffic.run(e, 2000, reconfigure=cfg)
    restored = Engine.from_config(copy.deepcopy(cfg), seed=seed)
    restored.restore_sessions(states_from_records(traffic.records))
    traffic.calls = []
    traffic.run(restored, 1000)
    assert traffic.checked > 400


def test_repeated_calls_on_a_quiet_number_match_the_reference() -> None:
    """Calls one after another on 600 candidates with nothing else happening (numpy weighs
    them): the answers match the reference bit for bit."""
    rng = random.Random(9)
    cfg = config(numbers=["+14155550101"])
    e = Engine.from_config(copy.deepcopy(cfg), seed=9)
    now = 1_800_000_000.0
    states = []
    for i in range(600):
        started = now - rng.uniform(60, 1500)
        states.append(SessionState(f"s_q{i:04d}", f"v_q{i % 550:04d}", "acme", "Google Ads",
                                   "+14155550101", started,
                                   min(now - 1, started + rng.uniform(0, 300)),
                                   rng.random() < 0.3, False, rng.randint(1, 4), None, None))
    e.restore_sessions(states)
    at = now
    for i in range(300):
        at += rng.choice([0.001, 0.01, 0.3, 2.0])
        caller = rng.choice([f"+1415555{k:04d}" for k in range(20)] + [None])
        expected, likelihood = reference(e, "+14155550101", caller, at)
        c = e.call(to="+14155550101", caller=caller, call_id=f"CQ{i}", at=at)
        assert [tuple(x) for x in c.candidates] == expected
        assert c.likelihood == likelihood
