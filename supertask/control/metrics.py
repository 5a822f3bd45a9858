"""Prometheus metrics on ``--metrics HOST:PORT`` (prometheus-client, own registry).

Served at ``/metrics`` (any path answers) by prometheus-client's threaded HTTP
server. What is measured, and where from:

- ``supertask_runs_total{namespace,job,status}``: finished attempts (runner observers);
- ``supertask_run_duration_seconds{namespace,job}``: histogram of attempt durations;
- ``supertask_fire_lateness_seconds{namespace,job}``: histogram of start minus
  scheduled time, for first attempts of scheduled and caught-up fires (retries and
  manual runs are not late);
- ``supertask_runs_in_flight{namespace,job}``: runs running now (read at scrape time);
- ``supertask_fires_coalesced_total{namespace,job}``: fires ``catch_up: latest`` folded
  into a later one (after downtime, or a scheduler behind its fires; read at scrape time);
- ``supertask_last_success_timestamp_seconds{namespace,job}``: end of the last success;
- ``supertask_runs_queued{namespace,reason}``: runs ``queued`` in the served namespaces
  by why they wait (``no live worker has gpu=1``; empty: their turn or their time), read
  from the store at scrape time (docs/workers.md);
- ``supertask_up``: 1 while the scheduler serves; ``supertask_start_time_seconds``.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from supertask.errors import UsageError
from supertask.log import get_logger
from supertask.model import Reason, RunStatus
from supertask.settings import parse_hostport

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """A scheduler component (see supertask.scheduler.service.Component)."""

    def __init__(self, address: str):
        self.host, self.port = parse_hostport(address, "--metrics")
        self.log = get_logger("supertask.control.metrics")
        self._server: Any = None
        self._thread: Any = None
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["namespace", "job"]
        self.runs = Counter("supertask_runs", "Finished run attempts by job and status",
                            [*labels, "status"], registry=self.registry)
        self.duration = Histogram("supertask_run_duration_seconds", "How long run attempts took",
                                  labels, buckets=DURATION_BUCKETS, registry=self.registry)
        self.lateness = Histogram("supertask_fire_lateness_seconds",
                                  "How long after its scheduled time a scheduled run started",
                                  labels, buckets=LATENESS_BUCKETS, registry=self.registry)
        self.last_success = Gauge("supertask_last_success_timestamp_seconds",
                                  "When the job's last successful run ended (epoch seconds)",
                                  labels, registry=self.registry)
        self.up = Gauge("supertask_up", "1 while the scheduler serves", registry=self.registry)
        self.started = Gauge("supertask_start_time_seconds", "When the scheduler started (epoch seconds)",
                             registry=self.registry)
        self.store_up = Gauge("supertask_store_up", "1 while the store answers, 0 while it is unreachable",
                              registry=self.registry)
        self._ctx: Any = None
        self.registry.register(_ByJob(self, "gauge", "supertask_runs_in_flight", "Runs running now",
                                      lambda ctx: Tally((run.namespace, run.job) for run in ctx.active.values())))
        self.registry.register(_ByJob(self, "counter", "supertask_fires_coalesced",
                                      "Fires catch_up: latest folded into a later one", lambda ctx: ctx.coalesced))

    def observe(self, facts: dict[str, Any]) -> None:
        """A runner observer: one finished attempt."""
        key = (facts["namespace"], facts["job"])
        self.runs.labels(*key, facts["status"]).inc()
        self.duration.labels(*key).observe(max(0.0, float(facts["duration"])))
        if facts.get("reason") in (Reason.SCHEDULE, Reason.CATCH_UP) and facts.get("attempt") == 1:
            self.lateness.labels(*key).observe(max(0.0, float(facts["started"]) - float(facts["scheduled"])))
        if facts["status"] == RunStatus.SUCCEEDED:
            self.last_success.labels(*key).set(float(facts["started"]) + float(facts["duration"]))

    def start(self, service: Any) -> None:
        from prometheus_client import start_http_server

        self._ctx = service.ctx
        service.ctx.observers.append(self.observe)
        try:
            self._server, self._thread = start_http_server(self.port, self.host, registry=self.registry)
        except OSError as exc:
            self.log.error("metrics not served", address=f"{self.host}:{self.port}", error=str(exc))
            raise UsageError(f"--metrics {self.host}:{self.port}: cannot listen ({exc.strerror or exc})") from exc
        host, port = self._server.server_address[:2]
        self.up.set(1)
        self.started.set(getattr(service, "started", time.time()))
        health = service.store.health
        self.registry.register(_Queued(service))
        self.store_up.set_function(lambda: 1.0 if health.up else 0.0)
        self.log.info("metrics serving", address=f"{host}:{port}", url=f"http://{host}:{port}/metrics")

    def stop(self) -> None:
        self.up.set(0)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)  # its serve_forever has returned: one owner joins every thread
            self._thread = None


class _ByJob:
    """A family by (namespace, job) read from the runner's context at scrape time:
    ``read(ctx)`` (called under its lock) gives the counts."""

    def __init__(self, metrics: Metrics, kind: str, name: str, documentation: str,
                 read: Callable[[Any], Tally[tuple[str, str]]]):
        self.metrics, self.kind, self.name, self.documentation, self.read = metrics, kind, name, documentation, read

    def _family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        family = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        return family(self.name, self.documentation, labels=["namespace", "job"])

    def describe(self) -> list[Any]:
        return [self._family()]

    def collect(self) -> Iterator[Any]:
        family = self._family()
        ctx = self.metrics._ctx
        if ctx is not None:
            with ctx.lock:
                tally = sorted(self.read(ctx).items())
            for (namespace, job), count in tally:
                family.add_metric([namespace, job], count)
        yield family


class _Queued:
    """``supertask_runs_queued{namespace,reason}`` from the store at scrape time (nothing
    while the store is unreachable; reasons cut to 200 characters)."""

    name = "supertask_runs_queued"
    documentation = "Runs queued (for a worker, or their turn) by namespace and why they wait"

    def __init__(self, service: Any):
        self.service = service

    def _family(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        return GaugeMetricFamily(self.name, self.documentation, labels=["namespace", "reason"])

    def describe(self) -> list[Any]:
        return [self._family()]

    def collect(self) -> Iterator[Any]:
        from supertask.workers.operators import queued_reasons

        family = self._family()
        try:
            found = queued_reasons(self.service.store, self.service.namespaces) if self.service.store.health.up else []
        except Exception:
            found = []
        for row in found:
            family.add_metric([row["namespace"], row["reason"][:200]], row["runs"])
        yield family
