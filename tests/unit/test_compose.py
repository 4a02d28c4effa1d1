"""docker-compose.yml runs what the README says: postgres (healthchecked), a one-shot migrate, the API, a projector."""

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_wires_postgres_migrate_api_and_projector() -> None:
    services = yaml.safe_load(COMPOSE.read_text("utf-8"))["services"]
    assert set(services) == {"db", "replica", "migrate", "api", "projector"}
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["qmstats", "migrate"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["api"]["command"][:2] == ["qmstats", "serve"]
    assert "--no-projector" in services["api"]["command"]
    assert services["projector"]["command"] == ["qmstats", "project"]
    for name in ("api", "projector"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        # The running services connect as the restricted role; only migrations use the owner.
        assert services[name]["environment"]["QMSTATS_DATABASE_URL"].startswith("postgresql://qmstats_service:")


def test_compose_runs_a_streaming_replica_the_api_reads_from() -> None:
    services = yaml.safe_load(COMPOSE.read_text("utf-8"))["services"]
    replica = services["replica"]
    start = " ".join(replica["entrypoint"])
    assert "pg_basebackup -h db" in start
    assert "-R -X stream" in start
    assert "pg_is_in_recovery()" in " ".join(replica["healthcheck"]["test"])
    assert replica["depends_on"]["db"]["condition"] == "service_healthy"
    # The primary lets the replica connect for replication.
    assert "host replication all all" in " ".join(services["db"]["entrypoint"])
    api = services["api"]
    assert api["environment"]["QMSTATS_REPLICA_URLS"].startswith("postgresql://qmstats_service:")
    assert "@replica:5432/" in api["environment"]["QMSTATS_REPLICA_URLS"]
    assert "@db:5432/" in api["environment"]["QMSTATS_DATABASE_URL"]
    assert api["depends_on"]["replica"]["condition"] == "service_healthy"
    # The projector stays on the primary.
    assert "QMSTATS_REPLICA_URLS" not in services["projector"]["environment"]
    assert "@db:5432/" in services["projector"]["environment"]["QMSTATS_DATABASE_URL"]
