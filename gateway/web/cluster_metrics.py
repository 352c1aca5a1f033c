"""Scale-out metrics: the worker's leases and loans, and a `worker` label on every sample.

With `serve --workers N` a scrape of the shared port reaches one worker; the label says which,
so a Prometheus job scraping each host (or each worker's own port behind its supervisor) can
sum or tell them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class ClusterState(Collector):
    """Lease and loan figures read at scrape time (nothing while DNI_CLUSTER is off)."""

    def __init__(self, read: Callable[[], tuple[Any, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        leases, lending = self.read()
        if leases is None:
            return
        yield GaugeMetricFamily("dni_cluster_workers", "Live gateway processes on the database",
                                value=len(leases.members))
        yield GaugeMetricFamily("dni_cluster_owned_numbers",
                                "Pool numbers this worker may hand out (leases held)",
                                value=len(leases.owned))
        yield GaugeMetricFamily("dni_cluster_lease_valid_seconds",
                                "Seconds before this worker's leases lapse unless renewed",
                                value=leases.valid_for())
        yield CounterMetricFamily("dni_cluster_lease_renew_failures",
                                  "Consecutive failed lease renewals", value=leases.failures)
        if lending is not None:
            for name, value, help_ in (
                    ("borrowed", lending.borrowed, "Numbers lent to this worker by another"),
                    ("borrow_refused", lending.refused, "Asks for a number nobody could lend"),
                    ("lent", lending.lent, "Numbers this worker lent to another")):
                yield CounterMetricFamily(f"dni_cluster_{name}", help_, value=value)


class WorkerLabelled:
    """A registry's metrics with `worker="<id>"` added to every sample."""

    def __init__(self, registry: CollectorRegistry, worker: str) -> None:
        self.registry = registry
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            family.samples = [s._replace(labels={**s.labels, "worker": self.worker})
                              for s in family.samples]
            yield family
