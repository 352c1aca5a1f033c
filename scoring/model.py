"""Likelihood model over the candidate sessions of a call.

Contract (used by `gateway.engine`): `score(ctx, timelines)` returns one likelihood per
timeline, in the same order, plus the likelihood that none of them made the call; together they
sum to 1.

The model is a conditional logit over candidates, read as competing hazards. Each candidate
session gets a weight = its hazard of calling *now*, the product of
- a recency hazard h(gap), gap = seconds since the session's last activity, a piecewise-linear
  log-hazard in log(1 + gap) (live pinging tabs sit at gap < 30 s; the curve then falls through
  "just left", "within the hour", "hours to days");
- evidence factors: a click_to_call seconds before the call (or earlier in the visit), a tab
  hidden seconds before (the dialer taking over a phone's screen), a live mobile session with
  neither (mobile callers almost always tap or switch away), a live desktop session (no dialer
  hides its tab), how long a live visit has lasted (a call during a visit falls anywhere in
  it, so a long visit is less likely to be calling in any one second), the number shared with
  another session, the caller ID's history with this visitor weighed by how sure that earlier
  attribution was (a power of its odds: a repeat call inherits the doubt of the first) or with
  someone else, a returning visitor (and live right now), and pages viewed (engagement).
"None of these" gets the rate of calls from people never shown the number (noise), which grows
with the number's exposure (a power of the candidate count: people pass on numbers they saw),
changed when the caller has called before without matching any candidate or withholds the ID.
Normalising the weights gives the posterior over candidates. Parameters live in `params.json`
(versioned; weights are log hazards relative to the noise base) and are fitted by maximum
likelihood on simulated calls of every scenario and pool size (`python -m scoring.fit`), which
also makes them calibrated on that mixture. A site whose call delays lie outside the mixture
(far more calls hours after the visit, say) is not: a fixed model cannot know the delays of a
site it has never seen (see fit.py).

`score` is the hot path (engine.call with 1,000 candidates in well under 1 ms): lookups in
precomputed tables, one `log1p` per candidate, no allocation besides the result. Given
`TimelineColumns` it reads the columns instead of one object per candidate, with the very same
arithmetic in the same order, so both forms give identical floats: from `vector.MIN_CANDIDATES`
candidates on with numpy, one array operation per factor (`scoring.vector`), below that in a
loop where a candidate that is not live and has no evidence flag (most of them) skips the tests
that cannot apply to it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, reduce
from importlib import resources
from operator import add
from typing import Any

from scoring import vector
from scoring.features import (
    C2C_EARLIER_S,
    C2C_RECENT_S,
    HIDDEN_RECENT_S,
    LIVE_S,
    N_BUCKETS,
    PAGEVIEWS_CAP,
    STEPS_PER_E,
    CallContext,
    Timeline,
    TimelineColumns,
)

PARAMS_FILE = "params.json"
PARAMS_VERSION = 2  # bump when the meaning of a parameter changes (2: caller odds, elapsed)

# An earlier attribution's likelihood enters as log odds, clipped to [0.001, 0.999]: odds of 0
# or 1 are infinite, and the fit's calls cannot tell a likelihood of 0.999 from a surer one.
CALLER_LIKELIHOOD_CLIP = 1e-3

# Evidence flags, in bit order (the fit and the tests use the same order).
FLAGS = (
    "c2c_recent",  # click_to_call within C2C_RECENT_S before the call
    "c2c_earlier",  # click_to_call within C2C_EARLIER_S, not recent
    "hidden_recent",  # tab hidden within HIDDEN_RECENT_S before the call
    "hidden_earlier",  # tab hidden after its last activity, longer ago
    "mobile_live_quiet",  # live mobile session with no recent tap and no recent hide
    "desktop_live",  # live desktop session (its callers leave no tap or hide to see)
    "shared",  # another session held the number while this one did
    "caller_match",  # earlier calls from this caller ID were attached to this visitor (times
    # a power of the odds of the surest of them: `Params.caller_slope`)
    "caller_other",  # this caller ID called before, attached to somebody else
    "returning",  # the visitor has had earlier sessions on the site
    "returning_live",  # ... and this session is live now
)
NONE_FEATURES = ("base", "caller_seen_before", "withheld", "log_candidates")
FLAG_CALLER_MATCH = FLAGS.index("caller_match")
FLAG_CALLER_OTHER = FLAGS.index("caller_other")


class ParamsError(ValueError):
    """The parameter file is missing a field or has the wrong version."""


@dataclass(frozen=True, slots=True)
class Scores:
    likelihoods: tuple[float, ...]  # one per timeline, same order as given
    none: float  # the call came from none of the candidates


@dataclass(frozen=True, slots=True)
class Params:
    """The model's free parameters, all on the log scale (see params.json)."""

    knots_s: tuple[float, ...]  # recency knots, seconds since last activity
    recency: tuple[float, ...]  # log hazard (per second) at each knot
    flags: tuple[float, ...]  # log factor per FLAGS entry
    pageviews: float  # log factor per unit of log(pageviews)
    none: tuple[float, ...]  # log weight terms per NONE_FEATURES entry
    caller_slope: float  # caller_match: log factor per unit of log odds of the earlier match
    live_elapsed: float  # live session: log factor per unit of log(1 + seconds of visit so far)
    version: int = PARAMS_VERSION
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "note": self.note,
            "recency": {"knots_s": list(self.knots_s), "log_hazard": list(self.recency)},
            "flags": dict(zip(FLAGS, self.flags, strict=True)),
            "caller_match_log_odds_slope": self.caller_slope,
            "live_elapsed_log_slope": self.live_elapsed,
            "pageviews_log_slope": self.pageviews,
            "none": dict(zip(NONE_FEATURES, self.none, strict=True)),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Params:
        if data.get("version") != PARAMS_VERSION:
            raise ParamsError(f"params version {data.get('version')!r}, need {PARAMS_VERSION}")
        try:
            knots = tuple(float(k) for k in data["recency"]["knots_s"])
            recency = tuple(float(v) for v in data["recency"]["log_hazard"])
            flags = tuple(float(data["flags"][f]) for f in FLAGS)
            none = tuple(float(data["none"][f]) for f in NONE_FEATURES)
            pageviews = float(data["pageviews_log_slope"])
            caller_slope = float(data["caller_match_log_odds_slope"])
            live_elapsed = float(data["live_elapsed_log_slope"])
        except (KeyError, TypeError) as exc:
            raise ParamsError(f"params file lacks or mangles {exc}") from exc
        if len(knots) != len(recency) or len(knots) < 2 or list(knots) != sorted(knots):
            raise ParamsError("recency knots_s must be increasing and match log_hazard")
        return cls(knots, recency, flags, pageviews, none, caller_slope, live_elapsed,
                   PARAMS_VERSION, data.get("note", ""))


# ---- feature extraction (readable reference; the fit uses it, `score` inlines it) -------------


def bucket(gap: float) -> int:
    """Recency table index of a gap in seconds."""
    if gap <= 0.0:
        return 0
    return min(int(math.log1p(gap) * STEPS_PER_E), N_BUCKETS - 1)


def flag_bits(ctx: CallContext, t: Timeline) -> int:
    """The evidence flags of one candidate as a bit mask in FLAGS order."""
    at = ctx.at
    gap = at - t.last_activity
    c2c = None if t.last_click_to_call is None else at - t.last_click_to_call
    hid = None if t.hidden_at is None else at - t.hidden_at
    c2c_recent = c2c is not None and c2c <= C2C_RECENT_S
    hidden_recent = hid is not None and hid <= HIDDEN_RECENT_S
    live = gap <= LIVE_S
    on = (
        c2c_recent,
        c2c is not None and C2C_RECENT_S < c2c <= C2C_EARLIER_S,
        hidden_recent,
        hid is not None and hid > HIDDEN_RECENT_S,
        t.mobile and live and not (c2c_recent or hidden_recent),
        not t.mobile and live,
        t.shared,
        t.caller_matches > 0,
        ctx.caller_seen_before and t.caller_matches == 0,
        t.visitor_sessions > 1,
        t.visitor_sessions > 1 and live,
    )
    return sum(1 << i for i, flag in enumerate(on) if flag)


def caller_log_odds(likelihood: float) -> float:
    """The caller_match covariate: log odds of the earlier attribution's likelihood, clipped."""
    q = min(max(likelihood, CALLER_LIKELIHOOD_CLIP), 1.0 - CALLER_LIKELIHOOD_CLIP)
    return math.log(q / (1.0 - q))


def elapsed_value(ctx: CallContext, t: Timeline) -> float:
    """The live_elapsed covariate: log(1 + seconds from assignment to the last activity) of a
    live session, at the recency table's resolution (0 for a session that is not live)."""
    if ctx.at - t.last_activity > LIVE_S:
        return 0.0
    return bucket_z(bucket(t.last_activity - t.assigned_at))


def pageview_value(pageviews: int) -> float:
    """The engagement covariate: log of pages viewed, capped."""
    return math.log(min(max(pageviews, 1), PAGEVIEWS_CAP))


def none_values(ctx: CallContext, candidates: int) -> tuple[float, ...]:
    """Covariates of the "none of these" option, in NONE_FEATURES order."""
    exposure = math.log(candidates) if candidates > 0 else 0.0
    return (1.0, float(ctx.caller_seen_before), float(ctx.caller is None), exposure)



def bucket_z(index: int) -> float:
    """The log(1 + gap) a bucket stands for (its midpoint; bucket 0 is a gap of zero)."""
    return 0.0 if index == 0 else (index + 0.5) / STEPS_PER_E


def hat_weights(knots_s: Sequence[float], index: int) -> tuple[tuple[int, float], ...]:
    """Linear interpolation weights of a bucket over the knots (in log(1 + gap))."""
    z = bucket_z(index)
    zs = [math.log1p(k) for k in knots_s]
    if z <= zs[0]:
        return ((0, 1.0),)
    for k in range(1, len(zs)):
        if z <= zs[k]:
            frac = (z - zs[k - 1]) / (zs[k] - zs[k - 1])
            return ((k - 1, 1.0 - frac), (k, frac))
    return ((len(zs) - 1, 1.0),)


# ---- the compiled model ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Model:
    """Params turned into the tables `score` reads (weights, not logs)."""

    params: Params
    recency: tuple[float, ...]  # hazard per bucket
    flags: tuple[float, ...]  # factor per flag
    pageviews: tuple[float, ...]  # factor per pageview count 0..PAGEVIEWS_CAP
    elapsed: tuple[float, ...]  # live session's factor per bucket of its visit's length so far
    caller_slope: float
    none_base: float
    none_seen: float
    none_withheld: float
    none_exposure: float  # exponent of the candidate count

    @classmethod
    def compile(cls, params: Params) -> Model:
        recency = []
        for i in range(N_BUCKETS):
            log_h = sum(w * params.recency[k] for k, w in hat_weights(params.knots_s, i))
            recency.append(math.exp(log_h))
        pv = tuple(
            math.exp(params.pageviews * pageview_value(n)) for n in range(PAGEVIEWS_CAP + 1)
        )
        elapsed = tuple(math.exp(params.live_elapsed * bucket_z(i)) for i in range(N_BUCKETS))
        base, seen, withheld, exposure = params.none
        return cls(
            params, tuple(recency), tuple(math.exp(f) for f in params.flags), pv, elapsed,
            params.caller_slope, math.exp(base), math.exp(seen), math.exp(withheld), exposure,
        )

    def caller_factor(self, likelihood: float) -> float:
        """The factor of a candidate whose visitor earlier calls from this caller matched."""
        return self.flags[FLAG_CALLER_MATCH] * math.exp(
            self.caller_slope * caller_log_odds(likelihood))


def load_params(text: str | None = None) -> Params:
    """Parse a parameter file (the packaged params.json when `text` is None)."""
    if text is None:
        text = resources.files("scoring").joinpath(PARAMS_FILE).read_text(encoding="utf-8")
    return Params.from_json(json.loads(text))


_current = Model.compile(load_params())


def current() -> Model:
    """The model `score` uses by default (the packaged parameters unless swapped by `use`)."""
    return _current


# ---- scoring profiles ---------------------------------------------------------------------------
# The packaged params.json is fitted on every simulated traffic pattern at once ("mixed"): it is
# calibrated on that mixture, not on a site whose callers all call within minutes, or days
# later. A source may name a profile fitted on one pattern instead (`scoring` in its config):
# scoring/profiles/<name>.json, named after the simulator's scenarios (traffic-model.md), each
# refitted with `python -m scoring.fit --scenario <name> --out scoring/profiles/<name>.json`.
MIXED = "mixed"
PROFILES_DIR = "profiles"


@cache  # package files: read once per process, not on every config parse
def profile_names() -> tuple[str, ...]:
    """Every profile a source may name: "mixed" (the packaged params.json), then the files."""
    folder = resources.files("scoring").joinpath(PROFILES_DIR)
    files = sorted(f.name.removesuffix(".json") for f in folder.iterdir()
                   if f.name.endswith(".json")) if folder.is_dir() else []
    return (MIXED, *files)


def profile(name: str) -> Model | None:
    """The model of a named profile; None for "mixed" (whatever `current()` is, so `use` still
    swaps it). ParamsError for a name that is not a packaged profile."""
    if name == MIXED:
        return None
    if name not in profile_names():
        raise ParamsError(f"no scoring profile {name!r}; expected one of "
                          f"{', '.join(profile_names())}")
    return _profile_model(name)


@cache
def _profile_model(name: str) -> Model:
    text = resources.files("scoring").joinpath(PROFILES_DIR, f"{name}.json").read_text(
        encoding="utf-8")
    return Model.compile(load_params(text))


@contextmanager
def use(params: Params) -> Iterator[Model]:
    """Score with `params` inside the block (the fit and the simulator try candidates)."""
    global _current  # noqa: PLW0603 - one process-wide model, swapped only by the offline tools
    previous, _current = _current, Model.compile(params)
    try:
        yield _current
    finally:
        _current = previous


def score(  # noqa: PLR0912, PLR0915 - the hot loop is inlined on purpose (module docstring)
    ctx: CallContext, timelines: Sequence[Timeline], *, model: Model | None = None
) -> Scores:
    """Likelihood of each candidate session, and of none of them, for the call in `ctx`."""
    m = _current if model is None else model
    if isinstance(timelines, TimelineColumns):
        return _score_columns(ctx, timelines, m)
    at = ctx.at
    recency = m.recency
    elapsed = m.elapsed
    top = N_BUCKETS - 1
    (f_c2c, f_c2c_old, f_hid, f_hid_old, f_quiet, f_desk, f_shared, _, f_other, f_ret,
     f_ret_live) = m.flags
    f_nomatch = f_other if ctx.caller_seen_before else 1.0
    pv_table = m.pageviews
    log1p = math.log1p
    weights: list[float] = []
    append = weights.append
    total = 0.0
    for t in timelines:
        gap = at - t.last_activity
        if gap > 0.0:
            i = int(log1p(gap) * STEPS_PER_E)
            w = recency[i if i < top else top]
        else:
            w = recency[0]
        recent = False
        c2c = t.last_click_to_call
        if c2c is not None:
            d = at - c2c
            if d <= C2C_RECENT_S:
                w *= f_c2c
                recent = True
            elif d <= C2C_EARLIER_S:
                w *= f_c2c_old
        hidden = t.hidden_at
        if hidden is not None:
            if at - hidden <= HIDDEN_RECENT_S:
                w *= f_hid
                recent = True
            else:
                w *= f_hid_old
        if gap <= LIVE_S:
            if not t.mobile:
                w *= f_desk
            elif not recent:
                w *= f_quiet
            e = t.last_activity - t.assigned_at
            k = int(log1p(e) * STEPS_PER_E) if e > 0.0 else 0
            w *= elapsed[k if k < top else top]
            if t.visitor_sessions > 1:
                w *= f_ret * f_ret_live
        elif t.visitor_sessions > 1:
            w *= f_ret
        if t.shared:
            w *= f_shared
        w *= m.caller_factor(t.caller_likelihood) if t.caller_matches else f_nomatch
        pv = t.pageviews
        w *= pv_table[pv] if 0 < pv < PAGEVIEWS_CAP else pv_table[PAGEVIEWS_CAP if pv > 0 else 1]
        append(w)
        total += w
    return _normalised(ctx, m, weights, total)


# The model's columns in the order `_weigh` and `vector.weights` take them.
_COLUMNS = ("last_activity", "evidence", "mobile", "pageviews", "last_click_to_call",
            "hidden_at", "shared", "visitor_sessions", "assigned_at", "caller_matches",
            "caller_likelihood")


def _score_columns(ctx: CallContext, columns: TimelineColumns, m: Model) -> Scores:
    """`score` over columns, with the same floats in the same order (NaN is None): with numpy
    (`scoring.vector`) for many candidates, else the loop."""
    f_nomatch = m.flags[FLAG_CALLER_OTHER] if ctx.caller_seen_before else 1.0
    if len(columns) >= vector.MIN_CANDIDATES:
        w = vector.weights(ctx.at, m, f_nomatch, [getattr(columns, c) for c in _COLUMNS])
        none = _none(ctx, m, len(w))
        inv = 1.0 / (vector.total(w) + none)
        return Scores(tuple((w * inv).tolist()), none * inv)
    weights = _weigh(ctx, m, f_nomatch, [getattr(columns, c) for c in _COLUMNS])
    return _normalised(ctx, m, weights, reduce(add, weights, 0.0))


def _weigh(  # noqa: PLR0912, PLR0915 - `score`'s loop, inlined the same way
    ctx: CallContext, m: Model, f_nomatch: float, columns: Sequence[Sequence[Any]]
) -> list[float]:
    """Each candidate's weight (`score`'s loop over columns in `_COLUMNS` order; NaN is None).
    A candidate without an `evidence` flag skips tests that cannot apply."""
    at = ctx.at
    recency = m.recency
    elapsed = m.elapsed
    top = N_BUCKETS - 1
    (f_c2c, f_c2c_old, f_hid, f_hid_old, f_quiet, f_desk, f_shared, _, _, f_ret,
     f_ret_live) = m.flags
    pv_table = m.pageviews
    log1p = math.log1p
    (lasts, evidences, mobiles, pvs, c2cs, hiddens, shareds, sessionss, assigneds, matcheses,
     likelihoods) = columns
    weights: list[float] = []
    for i, (last, evidence, mobile, matches, pv) in enumerate(zip(
            lasts, evidences, mobiles, matcheses, pvs, strict=True)):
        gap = at - last
        if gap > 0.0:
            k = int(log1p(gap) * STEPS_PER_E)
            w = recency[k if k < top else top]
        else:
            w = recency[0]
        if evidence:
            recent = False
            c2c = c2cs[i]
            if c2c == c2c:  # noqa: PLR0124 - not NaN (None): a click_to_call
                d = at - c2c
                if d <= C2C_RECENT_S:
                    w *= f_c2c
                    recent = True
                elif d <= C2C_EARLIER_S:
                    w *= f_c2c_old
            hidden = hiddens[i]
            if hidden == hidden:  # noqa: PLR0124 - not NaN (None)
                if at - hidden <= HIDDEN_RECENT_S:
                    w *= f_hid
                    recent = True
                else:
                    w *= f_hid_old
            sessions = sessionss[i]
            if gap <= LIVE_S:
                if not mobile:
                    w *= f_desk
                elif not recent:
                    w *= f_quiet
                e = last - assigneds[i]
                k = int(log1p(e) * STEPS_PER_E) if e > 0.0 else 0
                w *= elapsed[k if k < top else top]
                if sessions > 1:
                    w *= f_ret * f_ret_live
            elif sessions > 1:
                w *= f_ret
            if shareds[i]:
                w *= f_shared
        elif gap <= LIVE_S:
            w *= f_quiet if mobile else f_desk
            e = last - assigneds[i]
            k = int(log1p(e) * STEPS_PER_E) if e > 0.0 else 0
            w *= elapsed[k if k < top else top]
        w *= m.caller_factor(likelihoods[i]) if matches else f_nomatch
        w *= pv_table[pv] if 0 < pv < PAGEVIEWS_CAP else pv_table[PAGEVIEWS_CAP if pv > 0 else 1]
        weights.append(w)
    return weights


def _normalised(ctx: CallContext, m: Model, weights: list[float], total: float) -> Scores:
    """Add "none of them" and normalise the candidates' weights into likelihoods."""
    none = _none(ctx, m, len(weights))
    total += none
    inv = 1.0 / total
    return Scores(tuple([w * inv for w in weights]), none * inv)


def _none(ctx: CallContext, m: Model, candidates: int) -> float:
    """The weight of "none of them" for a call with `candidates` candidates."""
    none = m.none_base
    if candidates:
        none *= math.exp(m.none_exposure * math.log(candidates))
    if ctx.caller_seen_before:
        none *= m.none_seen
    if ctx.caller is None:
        none *= m.none_withheld
    return none


def log_weight_reference(params: Params, ctx: CallContext, t: Timeline) -> float:
    """The log weight of one candidate computed the slow, readable way (tests compare)."""
    log_w = sum(w * params.recency[k] for k, w in hat_weights(params.knots_s, bucket(
        ctx.at - t.last_activity)))
    bits = flag_bits(ctx, t)
    log_w += sum(v for i, v in enumerate(params.flags) if bits >> i & 1)
    if bits >> FLAG_CALLER_MATCH & 1:
        log_w += params.caller_slope * caller_log_odds(t.caller_likelihood)
    log_w += params.live_elapsed * elapsed_value(ctx, t)
    return log_w + params.pageviews * pageview_value(t.pageviews)


def log_none_reference(params: Params, ctx: CallContext, candidates: int) -> float:
    values = none_values(ctx, candidates)
    return sum(p * x for p, x in zip(params.none, values, strict=True))
