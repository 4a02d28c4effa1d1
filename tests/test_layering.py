"""The layering stays as docs/architecture.md describes it: imports point inward, SQL lives in the stores."""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("events", "projections", "schemas", "services")
# What each package may import of ours (services wires everything).
ALLOWED_IMPORTS = {"events": {"events"}, "projections": {"events", "projections"},
                   "schemas": {"events", "schemas"}}
# The only modules that hold SQL text: the stores of the log and of the read tables (in events/ or
# projections/, named ``*store.py`` or ``*tables.py``), the locks and channels, the rebuild's shadow-table
# DDL, and provisioning (schema history, database and roles). projections/history.py goes with issue 13.
SQL_HOMES = {"events/coordination.py", "projections/rebuild.py", "projections/history.py",
             "services/migrate.py", "services/embedded.py"}


def holds_sql(name: str) -> bool:
    """Whether a module may hold SQL text."""
    package, _, module = name.partition("/")
    return name in SQL_HOMES or (package in ("events", "projections") and "/" not in module
                                 and module.endswith(("store.py", "tables.py")))


SQL = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE|ALTER|DROP|TRUNCATE|WITH \w+ AS"
                 r"|DO \$\$)\b")


def modules() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text("utf-8"), str(path))


def strings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_imports_point_inward() -> None:
    wrong = []
    for name, tree in modules():
        allowed = ALLOWED_IMPORTS.get(name.split("/")[0])
        if allowed is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                top = node.module.split(".")[0]
                if top in PACKAGES and top not in allowed:
                    wrong.append(f"{name}:{node.lineno} imports {node.module}")
    assert not wrong, "imports that point outward:\n" + "\n".join(wrong)


def test_sql_only_in_the_stores() -> None:
    found = [f"{name}:{line}: {text.strip()[:60]!r}" for name, tree in modules() if not holds_sql(name)
             for line, text in strings(tree) if SQL.match(text)]
    assert not found, ("SQL outside the stores (log: events/store.py and its neighbours; read tables: "
                       "projections/tables.py):\n" + "\n".join(found))


def test_the_sql_pattern_recognises_the_statements_the_stores_hold() -> None:
    # Guards the guard: were the pattern to stop matching, the test above would pass vacuously.
    store = dict(modules())
    hits = {name: sum(1 for _, text in strings(store[name]) if SQL.match(text))
            for name in ("events/store.py", "projections/tables.py", "events/key_store.py")}
    assert all(count >= 3 for count in hits.values()), hits
