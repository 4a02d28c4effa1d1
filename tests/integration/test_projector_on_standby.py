"""The projector, migrations and serve refuse a hot standby with a message that says what to do."""

import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from services.projection_state import ProjectionState
from services.projector_process import ProjectorWorker
from tests.audit_support import qmstats
from tests.conftest import Replica

QMSTATS = str(Path(sys.executable).with_name("qmstats"))


async def test_the_projector_refuses_a_standby_and_says_why(replica: Replica) -> None:
    state = ProjectionState()
    pool = await asyncpg.create_pool(replica.service_url, min_size=1, max_size=2)
    try:
        worker = ProjectorWorker(pool, replica.service_url, state)
        async with asyncio.timeout(10):
            await worker.run()  # returns instead of leading: a standby grants advisory locks of its own
    finally:
        await pool.close()
    assert state.projector == "failed"
    assert state.error is not None
    assert "hot standby" in state.error
    assert "QMSTATS_DATABASE_URL" in state.error


async def test_qmstats_project_pointed_at_a_standby_exits_with_the_reason(replica: Replica) -> None:
    env = {**os.environ, "QMSTATS_DATABASE_URL": replica.service_url,
           "QMSTATS_MIGRATION_DATABASE_URL": replica.admin_url, "QMSTATS_LOG_FORMAT": "json"}
    process = await asyncio.create_subprocess_exec(QMSTATS, "project", env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode == 1
    text = " ".join(stderr.decode().split())
    assert "hot standby" in text
    assert "QMSTATS_REPLICA_URLS" in text


async def test_every_command_pointed_at_a_standby_says_so_in_one_line(replica: Replica) -> None:
    # Not only serve/migrate/project: every command works on the primary (it migrates first), so each one
    # pointed at a standby gives the same reason, not "cannot execute CREATE TABLE in a read-only transaction".
    for args in (("keys", "list"), ("keys", "create", "--role", "viewer", "--name", "wall"), ("export",),
                 ("verify",), ("report", "--campaign", "2017"), ("rebuild",), ("campaigns", "close", "--id", "2017")):
        code, out, err = await qmstats(replica.admin_url, *args)
        lines = err.strip().splitlines()
        assert (code, out, len(lines)) == (1, "", 1), (args, err)
        assert "hot standby" in lines[0], args
        assert "QMSTATS_REPLICA_URLS" in lines[0], args
