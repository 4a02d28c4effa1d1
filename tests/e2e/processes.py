"""The real ``qmstats`` console script as child processes, and reporters that retry until acknowledged.

Every child runs in its own session with its output in a file (no pipe can fill up and stall
it), and ``qmstats_children`` SIGKILLs whatever is still running when its block ends: no test
leaves a process behind, whatever fails.
"""

import asyncio
import json
import os
import random
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.factories import CAMPAIGN, event

QMSTATS = Path(sys.executable).with_name("qmstats")
PROBLEM = "application/problem+json"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def qmstats_env(service_url: str, admin_url: str, scratch: Path, **settings: str) -> dict[str, str]:
    """The environment of a qmstats child: this test's database, quiet JSON logs, generous rate limits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMSTATS_")}
    env |= {"QMSTATS_DATABASE_URL": service_url, "QMSTATS_MIGRATION_DATABASE_URL": admin_url,
            "QMSTATS_DATA_DIR": str(scratch / "never-used"), "QMSTATS_LOG_FORMAT": "json",
            "QMSTATS_LOG_LEVEL": "warning", "QMSTATS_RATE_LIMIT_PER_SECOND": "100000",
            "QMSTATS_RATE_LIMIT_BURST": "100000", "QMSTATS_PROJECTOR_POLL_SECONDS": "0.2",
            "COLUMNS": "200", "NO_COLOR": "1"}
    env |= {f"QMSTATS_{name.upper()}": value for name, value in settings.items()}
    return env


@dataclass
class Child:
    """One qmstats process; ``start`` may be called again after it died (a restart)."""

    args: tuple[str, ...]
    env: dict[str, str]
    log: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    async def start(self) -> None:
        assert self.proc is None or self.proc.returncode is not None, "already running"
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1}: qmstats {' '.join(self.args)}\n".encode())
            out.flush()
            self.proc = await asyncio.create_subprocess_exec(
                str(QMSTATS), *self.args, env=self.env, cwd=self.log.parent, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=out, start_new_session=True)
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def kill(self) -> None:
        """SIGKILL: no handler runs, no connection is closed politely."""
        if self.running:
            assert self.proc is not None
            with _gone():
                self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def terminate(self, seconds: float) -> int:
        """SIGTERM and wait for the exit code (SIGKILL after ``seconds``)."""
        assert self.proc is not None
        with _gone():
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(seconds):
                return await self.proc.wait()
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"qmstats {self.args[0]} did not exit within {seconds} s of SIGTERM\n"
                                 + self.tail()) from None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class _gone:
    """Ignore ProcessLookupError: the child may have exited on its own."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is ProcessLookupError


@dataclass
class Serve(Child):
    """``qmstats serve`` on a free port of 127.0.0.1."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start_listening(self, seconds: float = 30.0) -> None:
        """Start and wait until it answers /healthz."""
        await self.start()
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as session:
            while True:
                if not self.running:
                    raise AssertionError("qmstats serve exited during start-up\n" + self.tail())
                try:
                    async with session.get(self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"qmstats serve did not listen within {seconds} s\n" + self.tail())
                await asyncio.sleep(0.05)


@dataclass
class Children:
    """Every child a test started; all are killed when the test ends, passed or failed."""

    service_url: str
    admin_url: str
    scratch: Path
    started: list[Child] = field(default_factory=list)

    def serve(self, *extra: str, **settings: str) -> Serve:
        port = free_port()
        child = Serve(("serve", "--host", "127.0.0.1", "--port", str(port), *extra),
                      qmstats_env(self.service_url, self.admin_url, self.scratch, **settings),
                      self.scratch / f"serve-{port}.log", port=port)
        self.started.append(child)
        return child

    def project(self, **settings: str) -> Child:
        child = Child(("project",), qmstats_env(self.service_url, self.admin_url, self.scratch, **settings),
                      self.scratch / f"project-{len(self.started)}.log")
        self.started.append(child)
        return child

    async def run(self, *args: str, seconds: float = 60.0) -> tuple[int, str, str]:
        """Run a one-shot command (as the schema owner, like an operator) and return (code, stdout, stderr)."""
        env = qmstats_env(self.admin_url, self.admin_url, self.scratch)
        proc = await asyncio.create_subprocess_exec(str(QMSTATS), *args, env=env, cwd=self.scratch,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                    start_new_session=True)
        try:
            async with asyncio.timeout(seconds):
                out, err = await proc.communicate()
        except TimeoutError:
            with _gone():
                proc.kill()
            await proc.wait()
            raise AssertionError(f"qmstats {' '.join(args)} did not finish in {seconds} s") from None
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def kill_all(self) -> None:
        for child in self.started:
            await child.kill()


@asynccontextmanager
async def qmstats_children(service_url: str, admin_url: str, scratch: Path) -> AsyncIterator[Children]:
    """Children started inside the block are all SIGKILLed when it ends, however it ends."""
    children = Children(service_url, admin_url, scratch)
    try:
        yield children
    finally:
        await children.kill_all()


# ---------------------------------------------------------------- reporters that retry


async def open_campaign(base_url: str, admin: dict[str, str]) -> None:
    """Campaign 2017, opened over HTTP by the admin."""
    async with aiohttp.ClientSession() as session, session.post(base_url + "/v1/campaigns", json=CAMPAIGN,
                                                                headers=admin) as response:
        assert response.status in (200, 201), await response.text()


@dataclass
class Ledger:
    """What the clients saw: every acknowledged event, every status, every failure to connect."""

    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    server_errors: list[str] = field(default_factory=list)
    """Every 5xx that was not a clean 503 problem with Retry-After (must stay empty)."""
    unavailable: int = 0
    slowest_answer: float = 0.0
    requests: int = 0

    def facts(self) -> list[dict[str, Any]]:
        return list(self.acknowledged.values())


def batches(count: int, *, seed: int, regions: Sequence[str] = ("330102", "330106", "330203", "330500")) -> list[
        list[dict[str, Any]]]:
    """``count`` batches of 1–3 raid and publicity events with varied figures (money with 0–2 decimals)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        batch = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.7:
                cents = rng.randint(0, 10_000_000)
                money = str(Decimal(cents) / 100) if rng.random() < 0.5 else str(cents // 100)
                data = {"dens_busted": rng.randint(0, 5), "personnel": rng.randint(1, 300),
                        "vehicles": rng.randint(0, 40), "cases": rng.randint(0, 4), "seized_value_yuan": money,
                        "category": rng.choice(["liquor", "mooncake", "cosmetics"])}
                batch.append(event("raid_conducted", region=rng.choice(regions), data=data,
                                   occurred_at=f"2017-09-{rng.randint(1, 30):02d}T10:00:00+08:00"))
            else:
                data = {"participants": rng.randint(0, 5000), "quality_workers": rng.randint(0, 60),
                        "booths": rng.randint(0, 20), "consultations": rng.randint(0, 200)}
                batch.append(event("publicity_held", region=rng.choice(regions), data=data,
                                   occurred_at=f"2017-09-{rng.randint(1, 30):02d}T10:00:00+08:00"))
        out.append(batch)
    return out


async def post_until_acknowledged(session: aiohttp.ClientSession, base_url: str, headers: dict[str, str],
                                  batch: list[dict[str, Any]], ledger: Ledger, *, seconds: float = 90.0) -> int:
    """POST one batch, retrying the very same bytes (same event_ids) until a 2xx; returns the status."""
    body = {"events": batch}
    deadline = time.monotonic() + seconds
    while True:
        assert time.monotonic() < deadline, f"a batch was not acknowledged within {seconds} s: {ledger.statuses}"
        started = time.monotonic()
        try:
            async with session.post(base_url + "/v1/events", json=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=15)) as response:
                text = await response.text()
                status = response.status
                ctype = response.content_type
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError):
            ledger.connection_errors += 1
            await asyncio.sleep(0.05)
            continue
        finally:
            ledger.slowest_answer = max(ledger.slowest_answer, time.monotonic() - started)
        ledger.requests += 1
        ledger.statuses[status] += 1
        if status in (200, 201):
            results = json.loads(text)["results"]
            assert [r["event_id"] for r in results] == [e["event_id"] for e in batch], text
            for sent, result in zip(batch, results, strict=True):
                ledger.acknowledged[sent["event_id"]] = sent
                ledger.positions[sent["event_id"]] = result["position"]
            return status
        if status == 503 and ctype == PROBLEM and retry_after and retry_after.isdigit():
            ledger.unavailable += 1
            await asyncio.sleep(0.1)
            continue
        if status >= 500:
            ledger.server_errors.append(f"{status} {ctype} {text[:300]}")
            await asyncio.sleep(0.1)
            continue
        raise AssertionError(f"a valid batch was refused with {status}: {text}")


async def reporter(base_url: str, headers: dict[str, str], work: list[list[dict[str, Any]]], ledger: Ledger,
                   *, pause: float = 0.0) -> None:
    """One regional system: sends its batches one after another, each until acknowledged."""
    async with aiohttp.ClientSession() as session:
        for batch in work:
            await post_until_acknowledged(session, base_url, headers, batch, ledger)
            if pause:
                await asyncio.sleep(pause)


@asynccontextmanager
async def reporters(base_url: str, headers: dict[str, str], work: list[list[dict[str, Any]]], ledger: Ledger,
                    *, clients: int, pause: float = 0.0) -> AsyncIterator[list[asyncio.Task[None]]]:
    """``clients`` concurrent reporters sharing ``work``; cancelled on the way out if still running."""
    tasks = [asyncio.create_task(reporter(base_url, headers, work[i::clients], ledger, pause=pause))
             for i in range(clients)]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def wait_for_acks(ledger: Ledger, count: int, tasks: list[asyncio.Task[None]], seconds: float = 30.0) -> None:
    """Until the clients have had ``count`` events acknowledged in all (or all of them finished)."""
    deadline = time.monotonic() + seconds
    while len(ledger.acknowledged) < count and not all(t.done() for t in tasks):
        assert time.monotonic() < deadline, f"only {len(ledger.acknowledged)} of {count} acknowledged"
        for task in tasks:
            failure = task.exception() if task.done() else None
            if failure is not None:
                raise failure
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- what must hold afterwards


def independent_totals(facts: list[dict[str, Any]], prefix: str = "") -> dict[str, Decimal]:
    """Every metric summed straight from the events as sent (no projection code involved)."""
    sums: dict[str, Decimal] = {}
    for fact in facts:
        if not fact["region"].startswith(prefix):
            continue
        for name, value in fact["data"].items():
            if name != "category":
                sums[name] = sums.get(name, Decimal(0)) + Decimal(str(value))
    return sums


async def caught_up_dashboard(session: aiohttp.ClientSession, base_url: str, viewer: dict[str, str],
                              auditor: dict[str, str], *, region: str = "000000",
                              seconds: float = 30.0) -> dict[str, Any]:
    """The dashboard once the projection has reached the head of the log."""
    deadline = time.monotonic() + seconds
    while True:
        async with session.get(base_url + "/v1/audit/head", headers=auditor) as r:
            assert r.status == 200, await r.text()
            head = (await r.json())["position"]
        async with session.get(base_url + "/v1/campaigns/2017/dashboard", params={"region": region},
                               headers=viewer) as r:
            assert r.status == 200, await r.text()
            dashboard: dict[str, Any] = await r.json()
        if dashboard["position"] == head:
            return dashboard
        assert time.monotonic() < deadline, f"projection stuck at {dashboard['position']}, head {head}"
        await asyncio.sleep(0.1)


def assert_figures(dashboard: dict[str, Any], facts: list[dict[str, Any]]) -> None:
    """The dashboard's totals and each child's equal the independent sums, exactly."""
    region = dashboard["region"]["code"]
    prefix = "" if region == "000000" else region.rstrip("0")
    expected = independent_totals(facts, prefix)
    shown = {name: Decimal(str(m["value"])) for name, m in dashboard["metrics"].items()}
    for name, value in expected.items():
        assert shown.get(name, Decimal(0)) == value, (name, shown.get(name), value)
    assert {n for n, v in shown.items() if v} <= set(expected), shown
    for child in dashboard["children"]:
        child_prefix = child["code"][:2] if region == "000000" else child["code"][:4]
        wanted = independent_totals(facts, child_prefix)
        got = {n: Decimal(str(v)) for n, v in child["metrics"].items()}
        for name, value in wanted.items():
            assert got.get(name, Decimal(0)) == value, (child["code"], name, got.get(name), value)


async def stored_positions(admin_url: str) -> dict[str, list[int]]:
    """event_id → every position it holds in the log (facts only; one each, if all is well)."""
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch("SELECT event_id::text AS id, array_agg(position ORDER BY position) AS positions "
                                "FROM events WHERE type NOT LIKE 'campaign_%' GROUP BY event_id")
    finally:
        await conn.close()
    return {r["id"]: list(r["positions"]) for r in rows}
