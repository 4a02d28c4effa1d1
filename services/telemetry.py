"""Prometheus metrics, one registry per app so tests can build many apps in one process."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from events.writer import GroupCommitted


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
        self.http_requests = Counter("qmstats_http_requests", "HTTP requests by route and status",
                                     ["method", "route", "status"], registry=r)
        self.http_seconds = Histogram("qmstats_http_request_seconds", "HTTP request duration by route",
                                      ["route"], registry=r)

    def group_committed(self, group: GroupCommitted) -> None:
        """Writer callback: record one committed group."""
        self.events_appended.inc(group.events)
        self.append_seconds.observe(group.seconds)
        self.group_requests.observe(group.requests)
        self.group_events.observe(group.events)
        self.head_position.set(group.head)
