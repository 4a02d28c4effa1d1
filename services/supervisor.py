"""The parent of ``serve --workers N`` once its children run: a small process that only supervises.

``serve`` imports everything (the CLI, the app, the database set-up) before it forks the API workers and
the projector process; a parent that kept all of it would hold some 70 MB doing nothing (issue 13 counts
every serve process). So after forking, ``serve`` replaces itself (``os.execv``, same process id, so the
children stay its children and PR_SET_PDEATHSIG still ties them to it) with ``python -m
services.supervisor PLAN``, which imports only the standard library it needs here.

It passes SIGTERM or SIGINT on to every child, which drains and exits; it exits 0 when all of them did.
A child that exits on its own stops the others and the supervisor exits 1, for the outer supervisor
(systemd, Docker) to restart the service. A child that does not stop within the grace period is killed.
Last, it drops its handle on the embedded PostgreSQL, stopping it when no other qmstats process uses it.

SIGTERM and SIGINT stay blocked from before the fork until the handlers here are installed: a signal that
arrives meanwhile waits and is handled here, never by the default action across the ``execv``.
"""

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
"""The signals that stop serve: blocked in the parent from before the fork until ``supervise`` handles them."""


def plan_argv(children: dict[str, int], *, shutdown_seconds: float, json_logs: bool,
              embedded_data_dir: Path | None) -> list[str]:
    """The command line that replaces the serve process with this supervisor."""
    plan = {"children": children, "shutdown_seconds": shutdown_seconds, "json_logs": json_logs,
            "embedded_data_dir": str(embedded_data_dir) if embedded_data_dir is not None else None}
    return [sys.executable, "-m", "services.supervisor", json.dumps(plan)]


def logger(json_logs: bool) -> Callable[..., None]:
    """An error line on stderr in the shape serve's structlog set-up writes (JSON or readable), without it:
    importing structlog alone would cost this process some 18 MB."""

    def log(event: str, **fields: Any) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if json_logs:
            line = json.dumps({"event": event, **fields, "level": "error", "timestamp": stamp})
        else:
            line = f"{stamp} [error    ] {event} " + " ".join(f"{k}={v!r}" for k, v in fields.items())
        print(line, file=sys.stderr, flush=True)

    return log


def supervise(children: dict[int, str], *, shutdown_seconds: float, log: Callable[..., None]) -> int:
    """Wait for the children (pid → name) as described above; the exit code. Unblocks the stop signals."""
    stopping = False
    failed = False

    def stop_all() -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        signal.alarm(max(1, int(shutdown_seconds + 10)))

    def on_stop(_sig: int, _frame: Any) -> None:
        if not stopping:
            stop_all()

    def overdue(_sig: int, _frame: Any) -> None:
        for pid, name in list(children.items()):
            log("a serve process did not stop in time; killing it", process=name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_stop)
    signal.signal(signal.SIGALRM, overdue)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    codes: dict[str, int] = {}
    while children:
        try:
            pid, status = os.wait()  # a signal runs its handler and the wait goes on (PEP 475)
        except ChildProcessError:
            break
        name = children.pop(pid, None)
        if name is None:
            continue
        codes[name] = os.waitstatus_to_exitcode(status)
        if not stopping:
            log("a serve process exited; stopping the others", processes=[name], exit_codes=[codes[name]])
            failed = True
            stop_all()
    signal.alarm(0)
    if failed or children or any(code != 0 for code in codes.values()):
        log("serve stopped with a failed process", exit_codes=codes)
        return 1
    return 0


def main(argv: list[str]) -> int:
    """Supervise the children named in the plan (``plan_argv``), then release the embedded PostgreSQL."""
    plan = json.loads(argv[1])
    code = supervise({int(pid): name for name, pid in plan["children"].items()},
                     shutdown_seconds=float(plan["shutdown_seconds"]), log=logger(bool(plan["json_logs"])))
    if plan["embedded_data_dir"] is not None:
        from services.embedded import release  # only now: it imports the database client

        release(Path(plan["embedded_data_dir"]))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
