"""The README's walkthrough, as written: its campaign, sample event, correction and retraction are accepted and
mean what the text says, and its simulator command (run after them) passes its own --check."""

import asyncio
import json
import re
import shlex
from pathlib import Path

from aiohttp.test_utils import TestClient
from typer.testing import CliRunner

from services.cli import app
from tests.conftest import Keys

README = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")


def run_it() -> str:
    start = README.index("\n## Run it\n")
    return README[start:README.index("\n## Dashboard\n")]


def posted_bodies() -> list[tuple[str, str, dict[str, object]]]:
    """(path, key variable, JSON body) of every `curl -X POST … -d '…'` in "Run it", in order."""
    posts = []
    for match in re.finditer(r"curl -s -X POST http://127\.0\.0\.1:8080(\S+) -H \"Authorization: Bearer \$(\w+)\""
                             r".*?-d '(.*?)'", run_it(), flags=re.DOTALL):
        posts.append((match[1], match[2], json.loads(match[3])))
    return posts


async def test_the_walkthroughs_requests_are_accepted_and_mean_what_the_text_says(
        client: TestClient, keys: Keys) -> None:
    posts = posted_bodies()
    assert [(path, key) for path, key, _ in posts] == [("/v1/campaigns", "ADMIN")] + [("/v1/events", "ZJ")] * 4
    headers = {"ADMIN": keys.admin, "ZJ": keys.reporter}  # the README's ZJ key is a reporter for 330000, as ours
    positions = []
    for path, key, body in posts:
        response = await client.post(path, json=body, headers=headers[key])
        assert response.status == 201, (body, await response.text())
        answer = await response.json()
        positions.append(answer.get("last_position") or answer["event"]["position"])
    assert positions == [1, 2, 3, 4, 5]
    # The sample's README answer says position 2.
    assert '"status":"created","position":2}' in run_it()
    event_id = posts[1][2]["event_id"]
    history = await client.get(f"/v1/events/{event_id}", headers=keys.auditor)
    assert history.status == 200
    async with asyncio.timeout(10):
        while True:
            dashboard = await (await client.get("/v1/campaigns/2017/dashboard", headers=keys.viewer)).json()
            if dashboard["position"] >= 5:
                break
            await asyncio.sleep(0.05)
    # Corrected to 4 dens; the publicity day retracted.
    assert dashboard["metrics"]["dens_busted"]["value"] == 4
    assert dashboard["metrics"]["participants"]["value"] == 0


async def test_the_simulator_command_passes_its_check_after_the_walkthrough(client: TestClient, keys: Keys) -> None:
    for path, key, body in posted_bodies():
        response = await client.post(path, json=body, headers=keys.admin if key == "ADMIN" else keys.reporter)
        assert response.status == 201, await response.text()
    line = next(line for line in run_it().splitlines() if line.startswith(".venv/bin/qmstats simulate "))
    args = shlex.split(line.replace('"$ADMIN"', "ADMIN"))[1:]
    args = [a if a != "ADMIN" else keys.admin["Authorization"].removeprefix("Bearer ") for a in args]
    assert "--check" in args
    args += ["--url", str(client.make_url("/"))]
    # In a thread: the command runs its own event loop while this one keeps serving it.
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
