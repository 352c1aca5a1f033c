"""The accuracy report (issue 7): per source of a site, over a period, the figures that say
whether its pool needs more tracking numbers, fewer, or is just right.

Work in progress: the signature and the returned shape below are stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

DEFAULT_THRESHOLD = 0.9  # issue 7: calls attached below 0.9 likelihood are "not confident"
DEFAULT_TARGET = 0.02  # issue 7: recommend the smallest pool sharing at most 2% at peak


async def accuracy_report(
    pool: asyncpg.Pool, config: Mapping[str, Any] | Any, *, site: str | None,
    since: float, until: float, threshold: float = DEFAULT_THRESHOLD,
    target: float = DEFAULT_TARGET, replay: bool = True,
) -> dict[str, Any]:
    """The accuracy report of `site` (every site when None) for [since, until) epoch seconds.

    `config` is the engine config dict (`config_repo.load_config`) or a parsed `Config`
    (`engine.config`). Returns a JSON-able dict::

        {"site", "from", "to", "threshold", "target",
         "sources": [{"site", "source", "kind", ...online or offline figures...}]}

    Online sources: daily_visitors, pool_size, guideline_pool, ratio_vs_guideline,
    peak_hour_sessions, mean_reservation_s, offered_load_erlangs, shared_share,
    erlang_b_blocking, calls, single_candidate_share, mean_likelihood, likelihood_histogram
    (10 bins over 0..1), below_threshold_share, recommended_pool,
    predicted_accuracy_now, predicted_accuracy_at_recommended (None when `replay` is False),
    verdict ("more numbers" | "fewer numbers" | "just right"), change (+n / -n / 0), reason,
    reserved_by_hour (24 floats). Offline sources: calls, calls_per_number, unused_numbers.
    """
    raise NotImplementedError
