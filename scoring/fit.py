"""Refit the likelihood model's parameters on simulated calls.

Procedure (`python -m scoring.fit`, later `dni-gateway simulate --fit`):
1. simulate every named scenario with the FIT seed (never the evaluation seed of the reports
   and tests) at every reported pool size and an unlimited pool, replaying the traffic
   through the real engine;
2. record, for each call, exactly the (CallContext, Timelines) the engine handed to `score`, and
   which candidate was the true caller (or none);
3. maximise the conditional-logit log likelihood (Newton steps with backtracking) with a
   smoothness penalty on the recency curve and a light ridge on the evidence factors;
4. write `scoring/params.json` (or `--out`), version and provenance included, and print the
   held-out check: accuracy, ECE and Brier on the evaluation seed.
Maximum likelihood over the same model that scores live calls is what calibrates it: the
fitted weights are log hazards, so the posterior they give is the frequency the data showed.
Calibrated on the mixture, that is: the pool sizes matter (the "none of them" exposure and the
sharing weigh differently in a crowded pool), so all are in it, and so are all scenarios. What
no fixed model can learn is a site's own mix of call delays: where far more calls come hours
after the visit than in the mixture (the late-callers scenario), a candidate who left minutes
ago is less often the caller than the mixture says, and the likelihoods there are
over-confident; where calls come sooner (desktop-short), under-confident.

Candidates are summarised per call as counts of identical (recency bucket, evidence flags,
pageviews) rows, so the fit costs the number of distinct rows, not of candidates.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scoring import model as m
from scoring.features import N_BUCKETS, PAGEVIEWS_CAP, CallContext
from scoring.simulate import EngineFactory, FitSample, pool_label, replay, run_scenario
from scoring.traffic import SCENARIOS, generate, scenario

FIT_SEED = 101  # fit on this seed; reports and tests evaluate on seed 1 (held out)
EVAL_SEED = 1
FIT_DAYS = 21
FIT_RATIOS: tuple[int | None, ...] = (10, 20, 40, 60, 100, None)  # every reported pool size
# and an unlimited one (None): the "none of them" exposure is calibrated from 1 to thousands of
# candidates, and "shared" separates from recency
SMOOTH = 2.0  # penalty on second differences of the recency log hazard (per knot)
MONOTONE = 2000.0  # penalty on any rise of the recency hazard after the first knot: older is
# never likelier, other things equal (a prior, and what the tests check)
RIDGE = 0.05  # light ridge on evidence factors: flags that never fire stay near zero
MAX_STEPS = 40
TOLERANCE = 1e-6  # stop when the objective improves less than this per call


Features = tuple[tuple[int, float], ...]  # sparse: (parameter index, value)


@dataclass(slots=True)
class CallRows:
    """One call, its candidates grouped into identical rows: (features, count)."""

    rows: list[tuple[Features, int]]
    truth: tuple[int, ...]  # rows of the true caller's sessions; () when it was none of them
    none: Features


class Design:
    """Maps the model's features onto one parameter vector."""

    def __init__(self, knots_s: Sequence[float]) -> None:
        self.knots_s = tuple(knots_s)
        self.k = len(self.knots_s)
        self.flag0 = self.k
        self.pv = self.k + len(m.FLAGS)
        self.caller = self.pv + 1  # the caller_match log-odds slope
        self.elapsed = self.pv + 2  # the live session's elapsed log slope
        self.none0 = self.pv + 3
        self.size = self.none0 + len(m.NONE_FEATURES)
        self._hats = [
            tuple(m.hat_weights(self.knots_s, b)) for b in range(N_BUCKETS)
        ]

    def row(self, bucket: int, bits: int, pageviews: int, caller_log_odds: float = 0.0,
            elapsed: float = 0.0) -> Features:
        """A candidate's covariates: `caller_log_odds` counts only with the caller_match bit,
        `elapsed` is `model.elapsed_value` (0 unless live)."""
        x = list(self._hats[bucket])
        x += [(self.flag0 + i, 1.0) for i in range(len(m.FLAGS)) if bits >> i & 1]
        value = m.pageview_value(pageviews)
        if value:
            x.append((self.pv, value))
        if bits >> m.FLAG_CALLER_MATCH & 1 and caller_log_odds:
            x.append((self.caller, caller_log_odds))
        if elapsed:
            x.append((self.elapsed, elapsed))
        return tuple(x)

    def none(self, ctx: CallContext, candidates: int) -> Features:
        values = m.none_values(ctx, candidates)
        return tuple((self.none0 + i, v) for i, v in enumerate(values) if v)

    def summarise(self, sample: FitSample) -> CallRows:
        """Group the candidates; the true caller's sessions form rows of their own."""
        ctx = sample.ctx
        counts: dict[tuple[bool, int, int, int, float, float], int] = {}
        for t in sample.timelines:
            bits = m.flag_bits(ctx, t)
            odds = (m.caller_log_odds(t.caller_likelihood)
                    if bits >> m.FLAG_CALLER_MATCH & 1 else 0.0)
            key = (t.visitor == sample.truth, m.bucket(ctx.at - t.last_activity), bits,
                   min(max(t.pageviews, 1), PAGEVIEWS_CAP), odds, m.elapsed_value(ctx, t))
            counts[key] = counts.get(key, 0) + 1
        keys = list(counts)
        rows = [(self.row(*k[1:]), counts[k]) for k in keys]
        truth = tuple(i for i, k in enumerate(keys) if k[0])
        return CallRows(rows, truth, self.none(sample.ctx, len(sample.timelines)))

    def params(self, theta: Sequence[float], note: str) -> m.Params:
        return m.Params(
            knots_s=self.knots_s, recency=tuple(theta[: self.k]),
            flags=tuple(theta[self.flag0 : self.pv]), pageviews=theta[self.pv],
            none=tuple(theta[self.none0 :]), caller_slope=theta[self.caller],
            live_elapsed=theta[self.elapsed], note=note,
        )

    def theta(self, p: m.Params) -> list[float]:
        return [*p.recency, *p.flags, p.pageviews, p.caller_slope, p.live_elapsed, *p.none]


# ---- data -----------------------------------------------------------------------------------


def collect(
    design: Design, names: Sequence[str], days: int, seed: int, ratios: Sequence[int | None], *,
    engine_factory: EngineFactory | None = None, progress: Callable[[str], None] | None = None,
) -> list[CallRows]:
    """Replay each scenario at each pool size and summarise every scored call."""
    data: list[CallRows] = []
    for name in names:
        traffic = generate(scenario(name), days, seed)
        for ratio in ratios:
            if progress:
                progress(f"collect {name} {pool_label(ratio)}: {len(data)} calls so far")

            def keep(sample: FitSample) -> None:
                data.append(design.summarise(sample))

            replay(traffic, ratio, seed=seed, engine_factory=engine_factory, record=keep)
    return data


# ---- the likelihood -------------------------------------------------------------------------


def objective(
    design: Design, data: Sequence[CallRows], theta: Sequence[float], *, hessian: bool
) -> tuple[float, list[float], list[list[float]]]:
    """Penalised negative log likelihood, its gradient and (optionally) its Hessian."""
    n = design.size
    value, grad = 0.0, [0.0] * n
    hess = [[0.0] * n for _ in range(n)] if hessian else []
    for call in data:
        value += _call_terms(call, theta, grad, hess, n)
    value += _penalty(design, theta, grad, hess)
    return value, grad, hess


def _call_terms(
    call: CallRows, theta: Sequence[float], grad: list[float], hess: list[list[float]], n: int
) -> float:
    """-log P(true visitor) for one call, adding its gradient and Hessian.

    P(true) = Z_T / Z with Z summing every option's weight and Z_T the true caller's sessions
    (or "none"); the gradient is E[x] - E_T[x], the Hessian Cov[x] - Cov_T[x].
    """
    options = [*call.rows, (call.none, 1)]
    etas = [sum(theta[j] * v for j, v in x) for x, _ in options]
    top = max(etas)
    weights = [c * math.exp(e - top) for (_, c), e in zip(options, etas, strict=True)]
    truth = call.truth or (len(options) - 1,)
    z, z_true = sum(weights), sum(weights[i] for i in truth)
    mean, mean_true = [0.0] * n, [0.0] * n
    for (x, _), w in zip(options, weights, strict=True):
        _accumulate(x, w / z, mean, hess, 1.0)
    for i in truth:
        _accumulate(options[i][0], weights[i] / z_true, mean_true, hess, -1.0)
    active = [j for j in range(n) if mean[j] or mean_true[j]]
    for j in active:
        grad[j] += mean[j] - mean_true[j]
        if hess:
            row = hess[j]
            for k in active:
                row[k] += mean_true[j] * mean_true[k] - mean[j] * mean[k]
    return math.log(z) - math.log(z_true)


def _accumulate(
    x: Features, p: float, mean: list[float], hess: list[list[float]], sign: float
) -> None:
    for j, v in x:
        mean[j] += p * v
        if hess:
            row = hess[j]
            pv = sign * p * v
            for k, u in x:
                row[k] += pv * u


def _penalty(
    design: Design, theta: Sequence[float], grad: list[float], hess: list[list[float]]
) -> float:
    value = 0.0
    for i in range(1, design.k - 1):  # smooth recency: second differences
        d = theta[i - 1] - 2 * theta[i] + theta[i + 1]
        value += SMOOTH * d * d
        for j, c in ((i - 1, 1.0), (i, -2.0), (i + 1, 1.0)):
            grad[j] += 2 * SMOOTH * d * c
            if hess:
                for k, e in ((i - 1, 1.0), (i, -2.0), (i + 1, 1.0)):
                    hess[j][k] += 2 * SMOOTH * c * e
    for i in range(1, design.k - 1):
        rise = theta[i + 1] - theta[i]
        if rise > 0:
            value += MONOTONE * rise * rise
            grad[i + 1] += 2 * MONOTONE * rise
            grad[i] -= 2 * MONOTONE * rise
            if hess:
                hess[i + 1][i + 1] += 2 * MONOTONE
                hess[i][i] += 2 * MONOTONE
                hess[i][i + 1] -= 2 * MONOTONE
                hess[i + 1][i] -= 2 * MONOTONE
    for j in range(design.flag0, design.size):
        value += RIDGE * theta[j] ** 2
        grad[j] += 2 * RIDGE * theta[j]
        if hess:
            hess[j][j] += 2 * RIDGE
    return value


def solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the systems are ~30 x 30)."""
    n = len(b)
    rows = [[*a[i], b[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        if abs(rows[col][col]) < 1e-12:
            rows[col][col] = 1e-12
        for r in range(col + 1, n):
            f = rows[r][col] / rows[col][col]
            if f:
                for c in range(col, n + 1):
                    rows[r][c] -= f * rows[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (rows[r][n] - sum(rows[r][c] * x[c] for c in range(r + 1, n))) / rows[r][r]
    return x


def newton(
    design: Design, data: Sequence[CallRows], theta: list[float],
    progress: Callable[[str], None] | None = None,
) -> list[float]:
    """Minimise the penalised objective from `theta`."""
    value, grad, hess = objective(design, data, theta, hessian=True)
    for step in range(MAX_STEPS):
        direction = solve(hess, [-g for g in grad])
        if sum(g * d for g, d in zip(grad, direction, strict=True)) >= 0:
            direction = [-g for g in grad]  # the Hessian is not positive here: go downhill
        scale, new_value = 1.0, math.inf
        while scale > 1e-4:
            trial = [t + scale * d for t, d in zip(theta, direction, strict=True)]
            new_value = objective(design, data, trial, hessian=False)[0]
            if new_value < value:
                break
            scale /= 2
        else:
            break
        gain = value - new_value
        theta = trial
        if progress:
            progress(f"newton step {step + 1}: objective {new_value / len(data):.5f} per call")
        if gain < TOLERANCE * len(data):
            break
        value, grad, hess = objective(design, data, theta, hessian=True)
    return theta


# ---- the command ----------------------------------------------------------------------------


def fit(
    names: Sequence[str] = tuple(SCENARIOS), days: int = FIT_DAYS, seed: int = FIT_SEED, *,
    ratios: Sequence[int | None] = FIT_RATIOS, start: m.Params | None = None,
    engine_factory: EngineFactory | None = None, progress: Callable[[str], None] | None = None,
) -> m.Params:
    """Fitted parameters on simulated traffic of `names` with `seed`."""
    start = start or m.current().params
    design = Design(start.knots_s)
    data = collect(design, names, days, seed, ratios, engine_factory=engine_factory,
                   progress=progress)
    theta = newton(design, data, design.theta(start), progress)
    note = (f"fitted by scoring.fit on scenarios {', '.join(names)}; {days} days, seed {seed}, "
            f"pools {', '.join(map(pool_label, ratios))}; {len(data)} calls")
    return design.params(theta, note)


def _ratio(text: str) -> int | None:
    """A --ratio argument: daily visitors per number, or "unlimited"."""
    if text == "unlimited":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number or 'unlimited'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 1 daily visitor per number")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scoring.fit", description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--days", type=int, default=FIT_DAYS)
    ap.add_argument("--seed", type=int, default=FIT_SEED)
    ap.add_argument("--ratio", type=_ratio, action="append",
                    help="daily visitors per number, or 'unlimited' (repeatable; default: "
                    "10 20 40 60 100 unlimited)")
    ap.add_argument("--out", default=str(Path(m.__file__).with_name(m.PARAMS_FILE)))
    ap.add_argument("--check-days", type=int, default=14, help="held-out check length (0: skip)")
    args = ap.parse_args(argv)
    if args.seed == EVAL_SEED:
        ap.error(f"seed {EVAL_SEED} is the evaluation seed; fit on another")
    say = _say
    params = fit(args.scenario or tuple(SCENARIOS), args.days, args.seed,
                 ratios=args.ratio or FIT_RATIOS, progress=say)
    Path(args.out).write_text(json.dumps(params.to_json(), indent=2) + "\n", encoding="utf-8")
    say(f"wrote {args.out}")
    if args.check_days:
        with m.use(params):
            for name in args.scenario or ("default", "late-callers", "mobile-heavy"):
                rep = run_scenario(name, (20, 60), args.check_days, EVAL_SEED)
                print(rep.table(), end="\n\n")
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
