"""Calibration measures for attached likelihoods: Brier score and expected calibration error.

A likelihood is calibrated when, among calls attached with likelihood ~0.8, about 80% are
right. ECE bins the likelihoods into equal-width bins and averages |accuracy - confidence|
weighted by the bin's share of calls (Guo et al. 2017 use 10-15 bins; issue 6 asks for 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ECE_BINS = 10  # issue 6: expected calibration error over 10 bins


@dataclass(frozen=True, slots=True)
class Reliability:
    """One bin of a reliability diagram."""

    low: float
    high: float
    count: int
    confidence: float  # mean likelihood in the bin
    accuracy: float  # share right in the bin


def brier(likelihoods: Sequence[float], right: Sequence[bool]) -> float:
    """Mean squared error of the likelihoods against 0/1 outcomes (0 is perfect)."""
    if not likelihoods:
        return 0.0
    return sum((p - float(y)) ** 2 for p, y in zip(likelihoods, right, strict=True)) / len(
        likelihoods
    )


def reliability(
    likelihoods: Sequence[float], right: Sequence[bool], bins: int = ECE_BINS
) -> list[Reliability]:
    """Equal-width bins over [0, 1]; a likelihood of exactly 1 falls in the last bin."""
    sums = [[0, 0.0, 0.0] for _ in range(bins)]
    for p, y in zip(likelihoods, right, strict=True):
        b = sums[min(int(p * bins), bins - 1)]
        b[0] += 1
        b[1] += p
        b[2] += float(y)
    out = []
    for i, (n, conf, acc) in enumerate(sums):
        count = int(n)
        if count:
            out.append(Reliability(i / bins, (i + 1) / bins, count, conf / count, acc / count))
    return out


def ece(likelihoods: Sequence[float], right: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Expected calibration error: the call-weighted mean gap between accuracy and confidence."""
    total = len(likelihoods)
    if not total:
        return 0.0
    return sum(
        b.count / total * abs(b.accuracy - b.confidence)
        for b in reliability(likelihoods, right, bins)
    )
