"""Brier score and expected calibration error."""

from __future__ import annotations

import random

import pytest

from scoring.calibration import brier, ece, reliability


def test_perfect_and_worst_forecasts() -> None:
    assert brier([1.0, 0.0], [True, False]) == 0.0
    assert brier([0.0, 1.0], [True, False]) == 1.0
    assert ece([1.0, 0.0], [True, False]) == 0.0


def test_calibrated_forecasts_have_small_ece() -> None:
    rng = random.Random(1)
    ps = [rng.random() for _ in range(20_000)]
    ys = [rng.random() < p for p in ps]
    assert ece(ps, ys) < 0.02
    overconfident = [min(1.0, p * 1.5) for p in ps]
    assert ece(overconfident, ys) > 0.1


def test_reliability_bins() -> None:
    bins = reliability([0.05, 0.15, 0.15, 1.0], [False, True, False, True])
    assert [(b.count, b.accuracy) for b in bins] == [(1, 0.0), (2, 0.5), (1, 1.0)]
    assert bins[-1].low == pytest.approx(0.9)


def test_empty_input() -> None:
    assert ece([], []) == 0.0
    assert brier([], []) == 0.0
