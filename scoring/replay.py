"""Replay a period's recorded traffic through a fresh engine with other pool sizes, and predict
the attribution accuracy each pool size would have had.

The accuracy report (issue 7) asks what accuracy a recommended pool would give on the traffic a
site really had. Sessions and their browser events do not depend on the pool (a visitor's pages
and pings are the same whichever number they were shown), so they are replayed as recorded
through `gateway.engine.Engine` with any number of numbers. What real traffic lacks is the truth
of who called, and with another pool the caller would have dialled another number. The choice:

- **Truth proxy: the call's own posterior.** The engine's likelihoods over a call's candidates,
  plus "none of them" (noise), sum to 1 and are fitted to be calibrated. Each candidate session
  is taken as the caller with its likelihood; "none" is left out, as the simulator leaves noise
  calls out of its accuracy, so a call weighs its candidates' total. A call a user overrode is
  taken to come from the chosen session (weight 1).
- **Replay.** Sessions start in time order under their recorded visitor id, each forced into its
  recorded source (a landing parameter per source), with their recorded events; each call is
  placed, with its recorded caller ID and time, on the number the replay showed one caller
  drawn from the posterior (seeded; the same draw for every pool size), which keeps the caller
  histories the engine scores repeat callers with.
- **Expected accuracy (Rao-Blackwellised).** For every hypothesis the question is whether the
  engine would attach that candidate's visitor when the call comes in on the number the replay
  showed it. Hypotheses sharing a number share the answer; each other number gets one probe
  call from a withheld caller ID, which for a caller with no history changes only the "none"
  weight, common to all candidates, and so ranks them exactly as the real call would. A call is
  then right with the summed probability of the hypotheses the engine gets right, and accuracy
  is the weighted mean over calls. A repeat caller's call (history shapes the scoring and a
  probe cannot carry it) counts the one drawn hypothesis instead: unbiased, just noisier.
- **What it is worth.** At the recorded pool size the replay reproduces the live attribution, so
  the estimate is the attached visitor's share of the likelihood; elsewhere it asks what the
  engine would do for callers distributed as the engine believes. It is as good as the model's
  calibration. Against the accuracy the simulator measures with ground truth (one source, 500
  visitors a day, a week, pools of 10-100, recorded at 25): within 3 points where the model's
  ECE is about 0.05 (default, mobile-heavy, busy-low-calls scenarios), 5-7 points where it is
  about 0.1 (long-sessions; desktop-short, under), and up to 16 points over on late-callers,
  where the model itself is over-confident. `tests/reports` holds it to 5 points on a
  simulated week stored through the real engine and writer.

Pure: the engine is imported lazily (`scoring.simulate.real_engine`); time is always an argument.
The shell (`gateway.store.reports`) loads the traces from Postgres.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from scoring.simulate import BUSINESS, USER_AGENTS, EngineFactory, EngineLike, real_engine

REPLAY_SITE = "replay"  # the replay engine's only site: one report replays one site at a time
REPLAY_PARAM = "dni_replay"  # landing parameter that forces a session into its recorded source
REPLAY_HOST = "https://replay.invalid/"  # RFC 6761: a host that can never be real
NUMBER_BLOCK = "+14157"  # replay numbers +1 415 7xx xxxx: valid NANP, never dialled for real
OVERFLOW_BLOCK = "+14158"  # the overflow number of a source whose policy is "overflow_number"
DEFAULT_SEED = 7  # the caller draws repeat run to run: the report is reproducible
PROBE_SUFFIX = "#probe"  # probe call ids: a recorded id + this + n (carriers never use "#")
DRAIN_EVERY = 50_000  # engine steps between drains of its records (bounds the replay's memory)


@dataclass(frozen=True, slots=True)
class SessionTrace:
    """A recorded session: who, when, from which source, and its activity after the landing."""

    id: str
    visitor: str
    source: str
    start: float
    mobile: bool
    events: tuple[tuple[float, str], ...] = ()  # (at, "pageview" | "ping" | ...), time order


@dataclass(frozen=True, slots=True)
class CallTrace:
    """A recorded call to an online source with the candidates the live engine scored."""

    id: str
    source: str
    at: float
    caller: str | None
    candidates: tuple[tuple[str, float], ...] = ()  # (session id, likelihood), best first
    override: str | None = None  # the session a user attached by hand: taken as the truth
    counted: bool = True  # False: a warm-up call, replayed for the caller history only


@dataclass(frozen=True, slots=True)
class SourcePlan:
    """An online source as the replay configures it (its recorded options, any pool size)."""

    name: str
    numbers: int
    idle_timeout: float = 1800.0  # the engine's defaults (gateway.engine.config)
    match_window: float = 30 * 86_400.0
    overflow: str = "share"
    scoring: str = "mixed"  # the source's scoring profile (scoring.model.profile)


@dataclass(frozen=True, slots=True)
class SitePlan:
    key: str
    sources: tuple[SourcePlan, ...]
    stickiness_days: float = 30.0

    def resized(self, sizes: Mapping[str, int]) -> SitePlan:
        """The same site with some sources' pools resized (others as recorded)."""
        sources = tuple(
            SourcePlan(s.name, max(1, sizes.get(s.name, s.numbers)), s.idle_timeout,
                       s.match_window, s.overflow, s.scoring)
            for s in self.sources
        )
        return SitePlan(self.key, sources, self.stickiness_days)


@dataclass(frozen=True, slots=True)
class SourceAccuracy:
    """Predicted attribution accuracy of one source's pool over the counted calls."""

    source: str
    numbers: int
    calls: int  # counted calls with at least one replayed candidate
    weight: float  # their summed probability of coming from a candidate (not noise)
    accuracy: float | None  # expected share attached to the true caller (None: no calls)
    unplaced: float  # candidate probability on sessions older than the replayed window


class ReplayEngine(EngineLike, Protocol):
    """The engine contract as the replay uses it: `drain()` too (the engine keeps records)."""

    def drain(self) -> list[Any]: ...


def draw_callers(calls: Iterable[CallTrace], seed: int = DEFAULT_SEED) -> dict[str, str | None]:
    """Call id -> the candidate session placed as the caller (None: no candidate).

    Drawn in proportion to the candidates' likelihoods (the user's override when there is one),
    in call order from one seeded generator, so the same traces give the same draws."""
    rng = random.Random(seed)
    out: dict[str, str | None] = {}
    for call in sorted(calls, key=lambda c: (c.at, c.id)):
        u = rng.random()
        out[call.id] = call.override if call.override is not None else _pick(call.candidates, u)
    return out


def _pick(candidates: Sequence[tuple[str, float]], u: float) -> str | None:
    """The candidate where the cumulative likelihood, scaled to 1, first passes `u`."""
    total = sum(likelihood for _, likelihood in candidates)
    running = 0.0
    for session, likelihood in candidates:
        running += likelihood
        if u * total < running:
            return session
    return candidates[-1][0] if candidates else None


def replay(
    plan: SitePlan, sessions: Sequence[SessionTrace], calls: Sequence[CallTrace],
    callers: Mapping[str, str | None], *, engine_factory: EngineFactory | None = None,
) -> dict[str, SourceAccuracy]:
    """Replay the traces through a fresh engine configured by `plan`; accuracy per source.

    `sessions` and `calls` need not be sorted; `callers` comes from `draw_callers`."""
    engine = cast(ReplayEngine, (engine_factory or real_engine)(engine_config(plan)))
    run = _Run(plan, engine, callers)
    run.drive(sorted(sessions, key=lambda s: (s.start, s.id)),
              sorted(calls, key=lambda c: (c.at, c.id)))
    return {s.name: run.tallies[s.name].result(s) for s in plan.sources}


def engine_config(plan: SitePlan) -> dict[str, Any]:
    """The replay engine's config: one site, each online source matched by its own landing
    parameter (so every session lands in its recorded source) with synthetic numbers."""
    sources = []
    first = 0
    for i, s in enumerate(plan.sources):
        numbers = [f"{NUMBER_BLOCK}{first + k:06d}" for k in range(s.numbers)]
        first += s.numbers
        doc: dict[str, Any] = {
            "name": s.name, "kind": "online", "forward_to": BUSINESS, "numbers": numbers,
            "match": {"landing_param": f"{REPLAY_PARAM}={i}"}, "idle_timeout": s.idle_timeout,
            "match_window": s.match_window, "overflow": s.overflow, "scoring": s.scoring,
        }
        if s.overflow == "overflow_number":
            doc["overflow_number"] = f"{OVERFLOW_BLOCK}{i:06d}"
        sources.append(doc)
    site = {"key": REPLAY_SITE, "name": plan.key, "swap_targets": [BUSINESS],
            "stickiness_days": plan.stickiness_days, "sources": sources}
    return {"sites": [site]}


@dataclass(slots=True)
class _Tally:
    calls: int = 0
    weight: float = 0.0
    right: float = 0.0
    unplaced: float = 0.0

    def result(self, source: SourcePlan) -> SourceAccuracy:
        accuracy = self.right / self.weight if self.weight > 0 else None
        return SourceAccuracy(source.name, source.numbers, self.calls, self.weight, accuracy,
                              self.unplaced)


Hypothesis = tuple[float, str | None, str]  # (probability, replay number or None, visitor)


@dataclass(slots=True)
class _Run:
    plan: SitePlan
    engine: ReplayEngine
    callers: Mapping[str, str | None]
    landing: dict[str, str] = field(default_factory=dict)  # source -> landing URL
    shown: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # id -> (num, visitor)
    replay_id: dict[str, str] = field(default_factory=dict)  # recorded id -> replay session id
    tallies: dict[str, _Tally] = field(default_factory=dict)
    callers_seen: set[str] = field(default_factory=set)  # caller IDs placed so far
    steps: int = 0

    def __post_init__(self) -> None:
        for i, s in enumerate(self.plan.sources):
            self.landing[s.name] = f"{REPLAY_HOST}?{REPLAY_PARAM}={i}"
            self.tallies[s.name] = _Tally()

    # -- traffic --

    def drive(self, sessions: Sequence[SessionTrace], calls: Sequence[CallTrace]) -> None:
        """Session starts, their events and the calls, merged in time order (a call at the
        same instant as an event comes after it: the browser acted first)."""
        starts = [s.start for s in sessions]
        heap: list[tuple[float, int, str, str]] = []  # (at, seq, recorded session, kind)
        seq = si = 0
        for call in [*calls, None]:
            until = math.inf if call is None else call.at
            stop = bisect.bisect_right(starts, until)
            while si < stop or (heap and heap[0][0] <= until):
                if si < stop and (not heap or starts[si] <= heap[0][0]):
                    s = sessions[si]
                    si += 1
                    if self.visit(s):
                        for at, kind in s.events:
                            seq += 1
                            heapq.heappush(heap, (at, seq, s.id, kind))
                else:
                    at, _, sid, kind = heapq.heappop(heap)
                    self.engine.activity(session=self.replay_id[sid], kind=kind, at=at)
                    self._step()
            if call is not None:
                self.call(call)

    def _step(self) -> None:
        """Forget the replay engine's records now and then: nothing persists them."""
        self.steps += 1
        if self.steps % DRAIN_EVERY == 0:
            self.engine.drain()

    def visit(self, s: SessionTrace) -> bool:
        """Start (or continue) the session; False when it holds no number to replay events on."""
        url = self.landing.get(s.source)
        if url is None:
            return False
        v = self.engine.visit(site=REPLAY_SITE, url=url, referrer="",
                              user_agent=USER_AGENTS[s.mobile], visitor=s.visitor, at=s.start)
        self._step()
        if v.session is None:  # a full pool under "site_number": the site's own number
            self.shown[s.id] = (None, s.visitor)
            return False
        self.replay_id[s.id] = v.session
        self.shown[s.id] = (v.number, v.visitor)
        return True

    # -- calls --

    def call(self, c: CallTrace) -> None:
        """Place the call from the drawn caller; if counted, tally the expected accuracy."""
        tally = self.tallies.get(c.source)
        if tally is None:
            return
        first_time = c.caller is None or c.caller not in self.callers_seen
        placed = self._place(c)
        if c.caller is not None:
            self.callers_seen.add(c.caller)
        if not c.counted:
            return
        hypotheses, unplaced = self._hypotheses(c)
        tally.unplaced += unplaced
        weight = sum(p for p, _, _ in hypotheses)
        if weight <= 0:
            return
        tally.calls += 1
        tally.weight += weight
        if first_time or placed is None:
            tally.right += self._expected_right(c, hypotheses, placed)
        else:  # the caller's history shapes the scoring, which a probe cannot carry: one draw
            _, attached, truth = placed
            tally.right += weight * (attached == truth)

    def _place(self, c: CallTrace) -> tuple[str, str | None, str] | None:
        """The call as the drawn caller made it: (number, attached visitor, caller's visitor)."""
        drawn = self.callers.get(c.id)
        number, visitor = self.shown.get(drawn, (None, "")) if drawn is not None else (None, "")
        if number is None:
            return None
        result = self.engine.call(to=number, caller=c.caller, call_id=c.id, at=c.at)
        return number, result.visitor, visitor

    def _hypotheses(self, c: CallTrace) -> tuple[list[Hypothesis], float]:
        """(probability, number shown, visitor) per replayed candidate; the probability left
        on candidates the replay does not hold."""
        listed = ((c.override, 1.0),) if c.override is not None else c.candidates
        out: list[Hypothesis] = []
        unplaced = 0.0
        for session, p in listed:
            seen = self.shown.get(session)
            if seen is None:
                unplaced += p
            else:
                out.append((p, seen[0], seen[1]))
        return out, unplaced

    def _expected_right(self, c: CallTrace, hypotheses: list[Hypothesis],
                        placed: tuple[str, str | None, str] | None) -> float:
        """Sum of the probabilities of the hypotheses the engine would get right.

        One probe call per other number shown to a candidate, from a withheld caller ID: for a
        caller with no history a withheld ID changes only the "none of them" weight, which is
        common to all candidates, so the probe ranks them exactly as the real call would."""
        attached: dict[str, str | None] = {}
        if placed is not None:
            attached[placed[0]] = placed[1]
        right = 0.0
        for p, number, visitor in hypotheses:
            if number is None:
                continue  # shown the site's own number: the call cannot be attributed
            if number not in attached:
                probe = f"{c.id}{PROBE_SUFFIX}{len(attached)}"
                attached[number] = self.engine.call(to=number, caller=None, call_id=probe,
                                                    at=c.at).visitor
            right += p * (attached[number] == visitor)
        return right
