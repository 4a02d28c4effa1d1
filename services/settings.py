"""All configuration, read once from QMSTATS_* environment variables (and CLI flags)."""

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Service settings. Every field can be set as QMSTATS_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="QMSTATS_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="PostgreSQL URL the service connects with; unset = embedded server")
    migration_database_url: str | None = Field(
        default=None, description="URL of a role that owns the schema, for migrations and key management; "
                                  "defaults to database_url")
    service_role_password: str | None = Field(
        default=None, description="when set, `qmstats migrate` creates/updates the login role qmstats_service "
                                  "(member of qmstats_app: SELECT/INSERT on the log) with this password")
    data_dir: Path = Field(default=Path(".qmstats"), description="where the embedded PostgreSQL keeps its data")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)

    workers: int | None = Field(
        default=None, ge=1, description="API processes `serve` runs on one port; unset = the number of CPUs")

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    max_batch_events: int = Field(default=1000, ge=1)
    rate_limit_per_second: float = Field(default=200.0, gt=0, description="sustained requests/s per key")
    rate_limit_burst: int = Field(default=400, ge=1, description="requests a key may send at once")
    clock_skew_seconds: int = Field(default=300, ge=0, description="how far in the future occurred_at may be")
    group_max_events: int = Field(default=5000, ge=1)
    pool_min_size: int = Field(default=2, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    database_timeout_seconds: float = Field(
        default=5.0, gt=0, description="connecting to PostgreSQL or waiting for a pooled connection; "
                                       "a request that waits longer answers 503 with Retry-After")
    statement_timeout_seconds: float = Field(
        default=30.0, gt=0, description="one database statement that runs longer is cancelled (503)")
    body_timeout_seconds: float = Field(
        default=15.0, gt=0, description="a request body that has not fully arrived by then is answered 408")

    run_projector: bool = Field(default=True, description="run the projector inside `serve` (else `qmstats project`)")
    projector_batch_size: int = Field(default=1000, ge=1)
    flags_batch_size: int = Field(
        default=250, ge=1, description="events per flags projector batch: what the baselines it reads for a "
                                       "batch cost in memory grows with it (docs/decisions.md)")
    flags_memory_entries: int = Field(
        default=100_000, ge=0, description="baseline entries (a fact in one list) the flags projector keeps between "
                                           "batches before it forgets the least recently used half of its keys "
                                           "(projections.baselines)")
    projector_poll_seconds: float = Field(default=1.0, gt=0, description="fallback poll when no NOTIFY arrives")
    malloc_trim_seconds: float = Field(default=1.0, ge=0, description="how often each serve process gives "
                                       "freed heap back to the system (services.heap); 0: never")
    projector_coalesce_seconds: float = Field(
        default=0.005, ge=0, le=0.05, description="while following live appends, the projector waits this long "
                                                  "after a batch so the next one gathers what arrived meanwhile")
    flags_coalesce_seconds: float = Field(
        default=0.02, ge=0, le=1.0, description="the same for the flags projector (its lag is not the dashboard's)")
    projector_pause_rate: float = Field(
        default=5000.0, ge=0, description="the dashboard and flags projectors step aside while appends arrive faster "
                                          "than this many events/s (over the last second) and resume within ~150 ms "
                                          "of the rate falling below 0.8× it, catching up in full batches "
                                          "(services/overload.py, docs/decisions.md); 0: never pause")
    projector_nice: int = Field(
        default=0, ge=0, le=19, description="the projector process (serve --workers N ≥ 2) lowers its scheduling "
                                            "priority by this much (0: not at all; 5 tripled the lag under load)")
    replica_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="PostgreSQL hot-standby replicas the read routes read from "
                                          "(comma-separated in QMSTATS_REPLICA_URLS); writes stay on database_url")
    replica_max_lag_seconds: float = Field(
        default=5.0, gt=0, description="a replica further behind the primary than this is skipped "
                                       "(the primary answers)")
    replica_poll_seconds: float = Field(
        default=0.2, gt=0, le=0.25, description="how often each process checks its replicas (lag, health, and the "
                                                "replicated checkpoint that /v1/stream follows)")
    min_position_wait_seconds: float = Field(
        default=1.0, ge=0, description="how long a read with min_position waits for a replica before asking "
                                       "the primary")
    run_integrator: bool = Field(default=True, description="build the Merkle tree and sign checkpoints wherever "
                                                            "the projector runs (`serve`, `qmstats project`)")
    log_origin: str = Field(default="qmstats.local/log", pattern=r"^[^\s+]+$",
                            description="checkpoint origin and key name, used when the signing key is created")
    log_signing_key: SecretStr | None = Field(
        default=None, description="signed-note signing key (PRIVATE+KEY+…); unset = <data_dir>/log-signing-key, "
                                  "created on first start. Never logged or served")
    log_checkpoint_interval_seconds: float = Field(
        default=0.5, gt=0, description="least time between two signed checkpoints while events arrive")
    flag_late_after_days: float = Field(default=7.0, gt=0, description="a fact recorded more than this long after "
                                        "it occurred gets a late_report flag (data quality, issue 15)")
    ready_max_lag_seconds: float = Field(default=30.0, gt=0,
                                         description="/readyz fails when the projection lags longer")

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    open_metrics: bool = Field(default=True, description="serve /metrics without a key")
    public_dashboard: bool = Field(
        default=False, description="read-only public dashboard: the GET routes the dashboard page reads (dashboard, "
                                   "series, completeness, summary, stream, catalogue, campaigns) answer without a key")

    def service_url(self) -> str:
        """Where a client on this machine reaches `qmstats serve` (a wildcard host is reached on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _postgresql_url(cls, url: str | None) -> str | None:
        return url if url is None else _postgresql(url)

    @model_validator(mode="after")
    def _pool_sizes(self) -> "Settings":
        if self.pool_max_size < self.pool_min_size:
            raise ValueError(f"QMSTATS_POOL_MAX_SIZE ({self.pool_max_size}) is below QMSTATS_POOL_MIN_SIZE "
                             f"({self.pool_min_size})")
        return self

    @field_validator("replica_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("replica_urls")
    @classmethod
    def _postgresql_replicas(cls, urls: list[str]) -> list[str]:
        return [_postgresql(url) for url in urls]


def _postgresql(url: str) -> str:
    # asyncpg would refuse it only at the first connection, with a traceback.
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql://user:password@host:port/database URL")
    return url


def usable_cpus() -> int:
    """The CPUs this process may run on (what ``workers`` and a rebuild's connections default to)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
