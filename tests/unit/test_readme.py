"""The README documents every command, route and setting there is, and each one it lists is exercised by a test.

Commands: the README's command table equals the CLI's commands, and a test (other than the --help checks) runs
each one. Routes: the README's HTTP table equals the route table plus the dashboard page, and the access-table
test (tests/e2e/test_access_table.py) calls every route of the route table with every role. Settings: every
field of services/settings.py is in the configuration table.
"""

import re
from pathlib import Path
from typing import Any

import typer

from services.cli import app
from services.routes import PAGE_ROUTES, route_table
from services.settings import Settings
from tests.e2e.test_access_table import ACCESS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text("utf-8")
# Tests that only look at a command (its --help, the compose file) do not count as running it.
NOT_RUNNING = {"test_cli_presentation.py", "test_readme.py", "test_compose.py"}


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def table_cells(text: str) -> list[str]:
    """The first cell of every body row of the Markdown tables in ``text``."""
    cells = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith(("| command", "| route", "| variable", "|---")):
            cells.append(line.split(" | ")[0].removeprefix("| "))
    return cells


def readme_commands() -> set[str]:
    commands = set()
    for cell in table_cells(section("Command line")):
        for code in re.findall(r"`qmstats ([a-z]+(?: [a-z]+)?)", cell):
            words = code.split()
            group = app_groups().get(words[0])
            commands.add(" ".join(words[:2]) if group else words[0])
    return commands


def _subcommands(command: Any) -> dict[str, Any]:
    # typer builds its own Group class (not click's): a group is what has subcommands.
    return dict(getattr(command, "commands", {}))


def app_groups() -> dict[str, Any]:
    return {name: cmd for name, cmd in _subcommands(typer.main.get_command(app)).items() if _subcommands(cmd)}


def cli_commands() -> set[str]:
    names = set()
    for name, cmd in _subcommands(typer.main.get_command(app)).items():
        subs = _subcommands(cmd)
        names |= {f"{name} {sub}" for sub in subs} if subs else {name}
    return names


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path.split("?")[0])


def readme_routes() -> set[tuple[str, str]]:
    routes = set()
    for cell in table_cells(section("HTTP API (v1)")):
        method = "GET"
        for code in re.findall(r"`([^`]+)`", cell):
            match = re.fullmatch(r"(?:(GET|POST) )?(/[^ ]*)", code)
            if not match:
                continue
            method = match[1] or method
            path = match[2]
            if "{js,css}" in path:
                routes |= {(method, path.replace("{js,css}", ext)) for ext in ("js", "css")}
            else:
                routes.add((method, _normalise(path)))
    return routes


def served_routes() -> set[tuple[str, str]]:
    routes = {(r.method, _normalise(r.path)) for r in route_table()}
    for path, _ in PAGE_ROUTES:
        if path == "/static/{name}":
            routes |= {("GET", "/static/dashboard.js"), ("GET", "/static/dashboard.css")}
        else:
            routes.add(("GET", _normalise(path)))
    return routes


def test_the_command_table_lists_every_command_and_only_real_ones() -> None:
    assert readme_commands() == cli_commands()


def _runs(source: str, words: list[str], groups: set[str]) -> bool:
    """Whether ``source`` passes the command's words as consecutive arguments (``"keys", "create"``)."""
    quoted = ", ".join(f'"{w}"' for w in words)
    for match in re.finditer(re.escape(quoted), source):
        before = source[:match.start()].rstrip()
        # "import" alone must not be matched by "regions", "import".
        if len(words) == 1 and any(before.endswith(f'"{g}",') for g in groups):
            continue
        return True
    return False


def test_every_command_in_the_readme_is_run_by_a_test() -> None:
    sources = {p.name: p.read_text("utf-8") for p in (ROOT / "tests").rglob("*.py") if p.name not in NOT_RUNNING}
    groups = set(app_groups())
    unexercised = [c for c in sorted(readme_commands())
                   if not any(_runs(text, c.split(), groups) for text in sources.values())]
    assert unexercised == []


def test_the_http_table_lists_every_route_and_only_real_ones() -> None:
    assert readme_routes() == served_routes()


def test_every_api_route_in_the_readme_is_called_by_the_access_table_test() -> None:
    called = {(method, _normalise(path)) for method, path in ACCESS}
    api = {r for r in readme_routes() if r[1].startswith(("/v1/", "/healthz", "/readyz", "/metrics"))}
    assert api - called == set()
    page = (ROOT / "tests/e2e/test_dashboard_page.py").read_text("utf-8")
    for path in ('"/"', '"/campaigns/2017"', '/static/{name}', '"dashboard.js"', '"dashboard.css"'):
        assert path in page, path


def test_every_setting_is_in_the_configuration_table() -> None:
    table = section("Configuration")
    documented = set(re.findall(r"`QMSTATS_([A-Z_]+)`", table))
    assert {name.upper() for name in Settings.model_fields} == documented
