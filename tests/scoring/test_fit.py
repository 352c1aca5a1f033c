"""The refit procedure: the likelihood's gradient, the solver, and a fit on held-out data."""

from __future__ import annotations

import argparse
import random

import pytest

from scoring import fit, model
from scoring.calibration import brier, ece
from scoring.features import N_BUCKETS
from scoring.fit import CallRows, Design, objective, solve
from scoring.simulate import replay
from scoring.traffic import generate, scenario


def _toy(design: Design, rng: random.Random) -> list[CallRows]:
    calls = []
    for _ in range(30):
        rows = [(design.row(rng.randrange(N_BUCKETS), rng.randrange(1 << len(model.FLAGS)),
                            rng.randint(1, 5), rng.uniform(-5, 5), rng.choice([0.0, 4.0])),
                 rng.randint(1, 4)) for _ in range(6)]
        none = ((design.none0, 1.0),)
        truth = rng.choice([(), (rng.randrange(6),), (0, 3)])
        calls.append(CallRows(rows, truth, none))
    return calls


def test_gradient_and_hessian_match_finite_differences() -> None:
    design = Design(model.current().params.knots_s)
    rng = random.Random(7)
    data = _toy(design, rng)
    theta = [rng.uniform(-1, 1) for _ in range(design.size)]
    _, grad, hess = objective(design, data, theta, hessian=True)
    h = 1e-5
    for j in (0, 3, design.flag0 + 1, design.pv, design.caller, design.elapsed, design.none0):
        up = list(theta)
        up[j] += h
        down = list(theta)
        down[j] -= h
        f_up, g_up, _ = objective(design, data, up, hessian=False)
        f_down, g_down, _ = objective(design, data, down, hessian=False)
        assert grad[j] == pytest.approx((f_up - f_down) / (2 * h), rel=1e-4, abs=1e-6)
        for k in (0, design.flag0 + 1, design.caller, design.elapsed, design.none0):
            assert hess[k][j] == pytest.approx((g_up[k] - g_down[k]) / (2 * h), rel=1e-3,
                                               abs=1e-5)


def test_solve() -> None:
    a = [[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]]
    x = solve(a, [1.0, 2.0, 3.0])
    assert [sum(a[i][j] * x[j] for j in range(3)) for i in range(3)] == pytest.approx([1, 2, 3])


def test_newton_lowers_the_objective() -> None:
    design = Design(model.current().params.knots_s)
    data = _toy(design, random.Random(8))
    start = [0.0] * design.size
    end = fit.newton(design, data, start)
    assert objective(design, data, end, hessian=False)[0] < objective(
        design, data, start, hessian=False)[0]


def test_packaged_params_are_calibrated_on_a_held_out_seed() -> None:
    """The shipped parameters were fitted on seed FIT_SEED; check them on the eval seed, the
    crowded pools of the default scenario pooled (about 800 attached calls: the sampling
    noise of a 10-bin ECE is about 0.02 there)."""
    assert fit.EVAL_SEED != fit.FIT_SEED
    traffic = generate(scenario("default"), 12, fit.EVAL_SEED)
    likelihoods: list[float] = []
    rights: list[bool] = []
    for ratio in (20, 60):
        tally = replay(traffic, ratio, seed=fit.EVAL_SEED).tally
        likelihoods += tally.likelihoods
        rights += tally.rights
    assert len(likelihoods) > 750
    assert ece(likelihoods, rights) <= 0.05
    assert brier(likelihoods, rights) < 0.15


def test_main_refuses_the_evaluation_seed() -> None:
    with pytest.raises(SystemExit):
        fit.main(["--seed", str(fit.EVAL_SEED)])


def test_the_fit_covers_every_reported_pool_size() -> None:
    from scoring.simulate import RATIOS, UNLIMITED

    assert set(fit.FIT_RATIOS) == {*RATIOS, UNLIMITED}
    assert fit._ratio("unlimited") is None
    assert fit._ratio("60") == 60
    for bad in ("0", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            fit._ratio(bad)


def test_a_small_refit_runs_end_to_end(tmp_path: object) -> None:
    params = fit.fit(["desktop-short"], days=2, seed=fit.FIT_SEED, ratios=(20,))
    assert params.version == model.PARAMS_VERSION
    assert "desktop-short" in params.note
    with model.use(params):
        assert model.current().params == params
    assert 0 <= ece([0.5], [True]) <= 1
