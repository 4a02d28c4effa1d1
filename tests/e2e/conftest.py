"""E2E fixtures: an opened 2017 campaign and the shared official region code lists."""

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.factories import CAMPAIGN
from tests.shared_data import AREACODES


@pytest.fixture
def areacodes() -> Path:
    """The directory of MCA code lists (``<year>.txt``) shared with the project."""
    if not (AREACODES / "2017.txt").is_file():
        pytest.fail(f"the shared region code lists are missing: expected {AREACODES}/2017.txt")
    return AREACODES


@pytest.fixture
async def campaign(client: TestClient, keys: Keys) -> dict[str, str]:
    """Campaign 2017 (September 2017), opened by the admin at position 1."""
    response = await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)
    assert response.status == 201, await response.text()
    return CAMPAIGN
