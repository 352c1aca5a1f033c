"""Prometheus metrics, one registry per app (tests run several apps in one process).

Counters and histograms are updated by middlewares and handlers; gauges that mirror live state
(pools, writer queue) are read at scrape time by a collector, so the hot paths never pay for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# Buckets from 0.5 ms to 2.5 s: swap answers in ~1 ms, the call budget is well under a second.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LiveState(Collector):
    """Gauges read at scrape time from the engine and the writer."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        snap = self.read()
        labels = ["site", "source"]
        pools = {name: GaugeMetricFamily(f"dni_pool_{name}", help_, labels=labels)
                 for name, help_ in (("numbers", "Numbers in the pool"),
                                     ("reserved", "Numbers held by a live session"),
                                     ("free", "Numbers free to hand out"),
                                     ("sharings", "Times a number was shared (overflow)"),
                                     ("sessions", "Sessions tracked on the pool"))}
        for p in snap.get("pools", []):
            for name, fam in pools.items():
                fam.add_metric([p.site, p.source], float(getattr(p, name, 0)))
        yield from pools.values()
        for name, help_ in (("writer_queue_depth", "Records waiting for the database"),
                            ("writer_last_flush_seconds", "Duration of the last flush"),
                            ("writer_spool_errors", "Spool writes refused by the disk"),
                            ("writer_healthy", "1 when the last flush succeeded"),
                            ("engine_sessions", "Sessions held in memory")):
            yield GaugeMetricFamily(f"dni_{name}", help_, value=float(snap.get(name, 0)))
        yield CounterMetricFamily(  # exposed as dni_writer_quarantined_records_total
            "dni_writer_quarantined_records",
            "Records Postgres refused for their data, moved to the spool's quarantine/ file",
            value=float(snap.get("writer_quarantined_records", 0)))
        if snap.get("sip") is not None:
            yield from _sip_metrics(snap["sip"])


def _sip_metrics(sip: Any) -> Iterator[Any]:
    c, stats = sip.counters, sip.layer.stats
    requests = CounterMetricFamily("dni_sip_requests", "SIP requests by method", labels=["method"])
    for method, n in sorted(c.requests.items()):
        requests.add_metric([method], n)
    yield requests
    responses = CounterMetricFamily("dni_sip_responses", "SIP responses sent by status",
                                    labels=["status"])
    for status, n in sorted(c.responses.items()):
        responses.add_metric([str(status)], n)
    yield responses
    for name, value, help_ in (
        ("refused", c.refused, "Requests from sources outside DNI_SIP_TRUNKS"),
        ("rate_limited", c.rate_limited, "Requests over the per-source rate limit"),
        ("spool_failures", c.spool_failures, "Call records the spool refused (call forwarded)"),
        ("retransmissions", stats.retransmitted_responses, "Responses sent again"),
        ("timeouts", stats.timeouts, "Final responses never ACKed (Timer H)"),
        ("malformed", stats.malformed, "Messages that did not parse"),
        ("dropped", stats.dropped, "Messages dropped without a reply"),
    ):
        yield CounterMetricFamily(f"dni_sip_{name}", help_, value=value)
    yield GaugeMetricFamily("dni_sip_transactions", "Live SIP transactions", value=len(sip.layer))


class Metrics:
    def __init__(self, read_live: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dni_http_requests", "HTTP requests by route and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("dni_http_request_seconds", "HTTP latency by route",
                                 ["route", "method"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.swaps = Counter("dni_swaps", "Swap answers by outcome", ["site", "outcome"],
                             registry=self.registry)
        self.calls = Counter("dni_calls", "Calls by carrier and outcome",
                             ["carrier", "outcome"], registry=self.registry)
        self.call_decision = Histogram("dni_call_decision_seconds",
                                       "Time to attribute a call", ["carrier"],
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(LiveState(read_live))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._swap_children: dict[tuple[str, str], Any] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request; label children are cached (prometheus' labels() is not free)."""
        key = (route, method, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (self.requests.labels(route, method, str(status)),
                    self.latency.labels(route, method))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def count_swap(self, site: str, outcome: str) -> None:
        """Count one swap answer. The caller passes a configured site's key, so the cache is
        bounded by the site config (prometheus keeps every child it made anyway)."""
        key = (site, outcome)
        child = self._swap_children.get(key)
        if child is None:
            child = self._swap_children[key] = self.swaps.labels(site, outcome)
        child.inc()
