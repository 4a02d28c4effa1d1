"""QMSTATS_PUBLIC_DASHBOARD: off unless set, and it can only ever open the dashboard's GET routes."""

import pytest

from services.routes import route_table
from services.settings import Settings

DASHBOARD_READS = {"/v1/campaigns/{campaign}/dashboard", "/v1/campaigns/{campaign}/series",
                   "/v1/campaigns/{campaign}/completeness", "/v1/campaigns/{campaign}/summary", "/v1/stream",
                   "/v1/catalogue", "/v1/campaigns", "/v1/campaigns/{campaign}",
                   # The verifiable log's public parts: hashes and signatures only (issue 16).
                   "/v1/log/checkpoint", "/v1/log/key", "/v1/log/tile/{level}/{index}"}


def test_the_dashboard_is_private_unless_the_setting_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QMSTATS_PUBLIC_DASHBOARD", raising=False)
    assert Settings().public_dashboard is False
    monkeypatch.setenv("QMSTATS_PUBLIC_DASHBOARD", "true")
    assert Settings().public_dashboard is True
    monkeypatch.setenv("QMSTATS_PUBLIC_DASHBOARD", "false")
    assert Settings().public_dashboard is False


def test_only_the_dashboard_reads_can_be_opened() -> None:
    public = {(r.method, r.path) for r in route_table() if r.dashboard_public}
    assert public == {("GET", path) for path in DASHBOARD_READS}
