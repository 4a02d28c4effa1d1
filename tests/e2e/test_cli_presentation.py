"""How the command line presents itself: flags shown as flags, --version, a quiet first ``serve``."""

import asyncio
import os
import re
import signal
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.e2e.processes import free_port

QMSTATS = Path(sys.executable).with_name("qmstats")
COMMANDS = ("serve", "project", "rebuild", "export", "import", "verify", "replay", "report", "migrate", "simulate",
            "keys create", "keys list", "keys revoke", "campaigns open", "regions import")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMSTATS_")}
    return env | {"QMSTATS_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "120", "NO_COLOR": "1"}


async def _run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(str(QMSTATS), *args, cwd=tmp_path, env=_env(tmp_path),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    code, out, _ = await _run(tmp_path, "--version")
    assert (code, out) == (0, f"qmstats {version('qmstats')}\n")


@pytest.mark.parametrize("command", COMMANDS)
async def test_help_shows_flags_as_flags_and_every_option_once(tmp_path: Path, command: str) -> None:
    code, out, _ = await _run(tmp_path, *command.split(), "--help")
    assert code == 0, out
    assert "<bool>" not in out
    assert "--help" in out
    options = out.split("\nOptions:\n", 1)[1]
    for line in options.splitlines():
        # An option that takes no value is shown bare, never with a placeholder.
        for flag in ("--check", "--open-campaign", "--allow-remote", "--no-projector", "--verbose", "--help"):
            if re.match(rf"\s+{flag}\b", line):
                assert re.match(rf"\s+{flag}\s{{2,}}\S", line) or line.strip() == flag, line


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_the_first_serve_reports_the_database_set_up_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(QMSTATS), "serve", "--port", str(port), cwd=tmp_path, env=_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    before: list[str] = []
    try:
        async with asyncio.timeout(120):
            while True:
                line = (await proc.stderr.readline()).decode()
                assert line, "serve exited before listening:\n" + "".join(before)
                if "listening on" in line:
                    break
                before.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await proc.wait()
    assert len(before) == 1, "".join(before)
    assert before[0].startswith(f"database ready: embedded PostgreSQL in {tmp_path / 'data'} (")
    assert "initdb" not in before[0]
