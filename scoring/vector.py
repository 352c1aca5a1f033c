"""`score` over `TimelineColumns` with numpy: the same floats as the loop, hundreds of times
fewer interpreter steps.

A call on a busy number weighs a thousand candidates or more, and a calling visitor's number
is seldom called twice with its candidates unchanged, so the loop in `scoring.model` (about a
microsecond a candidate) set the call's latency. Here each factor is one array operation over
all candidates. The floats are those of the loop exactly, which `tests/scoring/test_vector.py`
checks on every path:
- every product is taken in the loop's order, a factor that does not apply being 1.0 (a
  product with 1.0 is exact);
- the caller factor, an `exp` (numpy's vectorised `exp` may round differently from libm's),
  is computed with `math` for the few candidates whose visitor the caller matched;
- a bucket index comes from numpy's `log1p`, which may differ from `math.log1p` in the last
  bit: indices whose product lies within `EDGE_GUARD` of an integer are recomputed with
  `math.log1p` (no other can move);
- the total is a sequential sum (`cumsum`), as the loop adds, not numpy's pairwise `sum`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from scoring.features import (
    C2C_EARLIER_S,
    C2C_RECENT_S,
    HIDDEN_RECENT_S,
    LIVE_S,
    N_BUCKETS,
    PAGEVIEWS_CAP,
    STEPS_PER_E,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from scoring.model import Model

# Below this many candidates the loop is quicker: numpy costs ~100 us whatever the count (some
# thirty array operations) plus ~0.07 us a candidate, the loop ~0.4 us a candidate (measured:
# 300 candidates 88 against 122 us, 100 candidates 81 against 79 us).
MIN_CANDIDATES = 200
# numpy's log1p is within a few ulps of libm's: a product `log1p(gap) * steps` further than
# this from an integer has the same integer part either way.
EDGE_GUARD = 1e-9


def weights(at: float, m: Model, f_nomatch: float,
            columns: Sequence[Sequence[Any]]) -> NDArray[np.float64]:
    """Each candidate's weight, in the loop's `_COLUMNS` order of columns."""
    (lasts, _evidence, mobiles, pvs, c2cs, hiddens, shareds, sessionss, assigneds, matcheses,
     likelihoods) = columns
    (f_c2c, f_c2c_old, f_hid, f_hid_old, f_quiet, f_desk, f_shared, _, _, f_ret,
     f_ret_live) = m.flags
    last = _floats(lasts)
    gap = at - last
    w = np.asarray(m.recency)[_buckets(gap)]
    # A tap and a hidden tab, seconds before the call or earlier (NaN: none).
    d = at - _floats(c2cs)
    tapped = d <= C2C_RECENT_S
    w *= np.where(tapped, f_c2c, np.where(d <= C2C_EARLIER_S, f_c2c_old, 1.0))
    h = at - _floats(hiddens)
    hid = h <= HIDDEN_RECENT_S
    w *= np.where(hid, f_hid, np.where(h == h, f_hid_old, 1.0))  # noqa: PLR0124 - NaN test
    recent = tapped | hid
    live = gap <= LIVE_S
    mobile = _ints(mobiles) != 0
    w *= np.where(live & ~mobile, f_desk, np.where(live & ~recent, f_quiet, 1.0))
    elapsed = last - _floats(assigneds)
    w *= np.where(live, np.asarray(m.elapsed)[_buckets(elapsed)], 1.0)
    returning = _ints(sessionss) > 1
    w *= np.where(returning, np.where(live, f_ret * f_ret_live, f_ret), 1.0)
    w *= np.where(_ints(shareds) != 0, f_shared, 1.0)
    matches = _ints(matcheses)
    caller = np.full(len(w), f_nomatch)
    for i in np.flatnonzero(matches).tolist():
        caller[i] = m.caller_factor(likelihoods[i])
    w *= caller
    pv = _ints(pvs)
    index = np.where((pv > 0) & (pv < PAGEVIEWS_CAP), pv, np.where(pv > 0, PAGEVIEWS_CAP, 1))
    w *= np.asarray(m.pageviews)[index]
    return w


def total(w: NDArray[np.float64]) -> float:
    """The loop's sum: left to right."""
    return float(np.cumsum(w)[-1]) if len(w) else 0.0


def _buckets(gap: NDArray[np.float64]) -> NDArray[np.intp]:
    """`int(log1p(gap) * STEPS_PER_E)` for gap > 0, else 0; at most the last bucket."""
    positive = gap > 0.0
    x = np.log1p(np.where(positive, gap, 0.0)) * STEPS_PER_E
    k = np.floor(x)
    near = np.flatnonzero(positive & (np.abs(x - np.rint(x)) < EDGE_GUARD))
    for i in near.tolist():
        k[i] = int(math.log1p(float(gap[i])) * STEPS_PER_E)
    return np.minimum(np.where(positive, k, 0.0), N_BUCKETS - 1).astype(np.intp)


def _floats(column: Sequence[Any]) -> NDArray[np.float64]:
    if getattr(column, "typecode", None) == "d":  # array("d"): a view, no copy
        view: NDArray[np.float64] = np.frombuffer(column, dtype=np.float64)  # type: ignore[call-overload]
        return view
    return np.array(column, dtype=np.float64)


def _ints(column: Sequence[Any]) -> NDArray[np.int64]:
    kind = getattr(column, "typecode", None)
    if kind == "q":
        ints: NDArray[np.int64] = np.frombuffer(column, dtype=np.int64)  # type: ignore[call-overload]
        return ints
    if isinstance(column, bytes | bytearray):
        return np.frombuffer(column, dtype=np.uint8).astype(np.int64)
    return np.array(column, dtype=np.int64)
