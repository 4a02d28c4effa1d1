"""Live facts about the running service that /readyz reports."""

from dataclasses import dataclass


@dataclass
class ServiceState:
    """Set by background tasks, read by /readyz and /metrics."""

    listener_connected: bool = False
    writer_running: bool = False
    shutting_down: bool = False
