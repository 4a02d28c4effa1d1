"""Prometheus metrics, one registry per app so tests can build many apps in one process."""

import os
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from events.writer import GroupCommitted
from services.pause_gate import PauseReport
from services.projection_state import ProjectionState
from services.replicas import Replica


@dataclass
class Telemetry:
    """Every metric the service exports on /metrics."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events_appended = Counter("qmstats_events_appended", "Events appended to the log", registry=r)
        self.append_seconds = Histogram(
            "qmstats_append_seconds", "Time to decide, insert and commit one group", registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self.group_requests = Histogram(
            "qmstats_group_requests", "Requests committed together in one group", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.group_events = Histogram(
            "qmstats_group_events", "Events committed together in one group", registry=r,
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000))
        self.head_position = Gauge("qmstats_head_position", "Last position appended by this process", registry=r)
        self.projected = Counter("qmstats_events_projected", "Events applied by this process's projector",
                                 registry=r)
        self.http_requests = Counter("qmstats_http_requests", "HTTP requests by route and status",
                                     ["method", "route", "status"], registry=r)
        self.reads = Counter("qmstats_reads", "Snapshot reads by where they were answered (replica or primary)",
                             ["source"], registry=r)
        self.replica_fallbacks = Counter(
            "qmstats_replica_fallbacks", "Reads a replica could not answer (behind min_position, or down) that went "
            "to the primary", registry=r)
        self.replica_lag_positions = Gauge("qmstats_replica_lag_positions", "Log positions the replica has not "
                                           "replayed yet", ["replica"], registry=r)
        self.replica_lag_seconds = Gauge("qmstats_replica_lag_seconds", "Age of the oldest position the replica "
                                         "has not replayed yet", ["replica"], registry=r)
        self.replica_projection_position = Gauge(
            "qmstats_replica_projection_position", "Projection position replicated to the replica", ["replica"],
            registry=r)
        self.replica_in_use = Gauge("qmstats_replica_in_use", "1 when reads may go to the replica (up, a standby, "
                                    "lag within the bound)", ["replica"], registry=r)
        self.http_seconds = Histogram("qmstats_http_request_seconds", "HTTP request duration by route",
                                      ["route"], registry=r)
        self._http_counters: dict[tuple[str, str, int], Counter] = {}
        self._http_histograms: dict[str, Histogram] = {}
        self.client_disconnects = Counter(
            "qmstats_http_client_disconnects", "Responses the client stopped reading (closed tab, dropped stream); "
            "counted as status 499 in qmstats_http_requests, never as a 5xx", ["route"], registry=r)

    @classmethod
    def for_service(cls, projection: ProjectionState, pause: PauseReport | None = None) -> "Telemetry":
        """Metrics of a service process, with projection gauges read from ``projection`` and the projectors' pause
        decision from ``pause`` (when they run here or in a sibling process) at scrape time."""
        telemetry = cls()
        r = telemetry.registry
        # Each API process of `serve --workers N` answers /metrics for itself; this tells them apart.
        Gauge("qmstats_process_id", "Operating-system id of the process answering", registry=r).set(os.getpid())
        Gauge("qmstats_projection_position", "Position the dashboard projection reflects",
              registry=r).set_function(lambda: projection.position)
        Gauge("qmstats_log_head_position", "Last position of the log as this process knows it",
              registry=r).set_function(lambda: projection.head)
        Gauge("qmstats_projection_lag_events", "Events appended but not yet projected",
              registry=r).set_function(lambda: projection.lag_events)
        Gauge("qmstats_projection_lag_seconds", "Age of the oldest unprojected event",
              registry=r).set_function(lambda: projection.lag_seconds)
        Gauge("qmstats_projector_failed", "1 when the projector stopped on an event it cannot apply",
              registry=r).set_function(lambda: 1.0 if projection.projector == "failed" else 0.0)
        if pause is not None:
            Gauge("qmstats_projectors_paused", "1 while the dashboard and flags projectors step aside because appends "
                  "arrive faster than QMSTATS_PROJECTOR_PAUSE_RATE (they catch up when the burst ends)",
                  registry=r).set_function(lambda: 1.0 if pause.paused else 0.0)
            Gauge("qmstats_projectors_append_rate", "Append rate the projectors heard at their last pause decision, "
                  "events/s over the last second", registry=r).set_function(lambda: pause.rate)
            Gauge("qmstats_projectors_pause_rate", "The append rate (events/s) above which the projectors step aside; "
                  "0: never", registry=r).set_function(lambda: pause.threshold)
            Gauge("qmstats_projectors_pause_count", "Times the projectors stepped aside since they started",
                  registry=r).set_function(lambda: pause.pauses)
        return telemetry

    def http_answered(self, method: str, route: str, status: int, seconds: float | None) -> None:
        """Count one answered request and, unless ``seconds`` is None, time it.

        The labelled children are kept: looking one up through ``labels()`` costs more than updating it.
        """
        counter = self._http_counters.get((method, route, status))
        if counter is None:
            counter = self._http_counters[(method, route, status)] = self.http_requests.labels(
                method, route, str(status))
        counter.inc()
        if seconds is not None:
            histogram = self._http_histograms.get(route)
            if histogram is None:
                histogram = self._http_histograms[route] = self.http_seconds.labels(route)
            histogram.observe(seconds)

    def watch_replica(self, replica: Replica) -> None:
        """Export a replica's lag and state, read from it at scrape time."""
        name = replica.name
        self.replica_lag_positions.labels(name).set_function(lambda: replica.lag_positions)
        self.replica_lag_seconds.labels(name).set_function(lambda: replica.lag_seconds)
        self.replica_projection_position.labels(name).set_function(lambda: replica.projection)
        self.replica_in_use.labels(name).set_function(lambda: 1.0 if replica.in_use else 0.0)

    def group_committed(self, group: GroupCommitted) -> None:
        """Writer callback: record one committed group."""
        self.events_appended.inc(group.events)
        self.append_seconds.observe(group.seconds)
        self.group_requests.observe(group.requests)
        self.group_events.observe(group.events)
        self.head_position.set(group.head)
