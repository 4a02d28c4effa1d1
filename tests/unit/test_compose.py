"""docker-compose.yml runs what the README says: postgres (healthchecked), a one-shot migrate, the API, a projector."""

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_wires_postgres_migrate_api_and_projector() -> None:
    services = yaml.safe_load(COMPOSE.read_text("utf-8"))["services"]
    assert set(services) == {"db", "migrate", "api", "projector"}
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
