"""A task or step status is written as its enum (`server.domain.states`), never as a literal.

Status values live in the move tables, the engine that applies them, the schema (models and
migrations) and the code that maps the enums to a wire format. Anywhere else a literal such as
"complete" would silently drift from the tables, so this test fails on one. It reads the source
with `ast`: a string constant equal to a status value, or SQL text quoting one ('error'), is a
literal. Dictionary keys and `.get()`/subscript keys ("error" in a JSON body) are names, not
statuses. A line may say why a value that merely spells a status is none with a trailing
`# not a status: <why>`.
"""

import ast
import re
from pathlib import Path

from server.domain.states import StepState, TaskState

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("server", "graphql_schema", "rest_compat", "workers")
"""The product. `bench/` drives it from outside, as a client of the APIs and a bulk seeder of
rows (like the migrations), and `tests/` states what the APIs return: both spell statuses."""
STATUSES = {s.value for s in TaskState} | {s.value for s in StepState}
SQL_QUOTED = re.compile(r"'(" + "|".join(sorted(STATUSES)) + r")'")
MARKER = "# not a status:"

ALLOWED = (
    "server/domain/states.py",  # the vocabulary and its move tables
    "server/engine/",  # the one place a status changes
    "server/db/models.py",  # the schema's defaults
    "server/db/migrations/",  # schema history, frozen as it ran
    "graphql_schema/types/enums.py",  # maps the enums to GraphQL enum values
    # The Python client is meant to be split into its own package and may not import the
    # domain (an import-linter contract), so it spells the statuses the API documents.
    "server/client/",
)


def _names(tree: ast.AST) -> set[int]:
    """ids of constants used as dictionary keys or lookup keys."""
    names: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            names.update(id(k) for k in node.keys if k is not None)
        elif isinstance(node, ast.Subscript):
            names.add(id(node.slice))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and node.args
        ):
            names.add(id(node.args[0]))
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of docstrings (any string standing alone as a statement)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def literals(path: Path) -> list[str]:
    """`path:line: value` of every status literal in one file."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    names = _names(tree) | _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        value = node.value
        if id(node) in names or not (value in STATUSES or SQL_QUOTED.search(value)):
            continue
        if any(MARKER in lines[n - 1] for n in range(node.lineno, (node.end_lineno or 0) + 1)):
            continue
        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {value[:60]!r}")
    return found


def test_no_status_literal_outside_the_engine_and_the_move_tables():
    found = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not relative.startswith(ALLOWED):
                found += literals(path)
    assert found == [], "use StepState/TaskState:\n" + "\n".join(found)


def test_the_scan_finds_literals(tmp_path):
    sample = ROOT / "tests" / "unit" / "_status_literal_sample.py"
    sample.write_text(
        'a = "pending"\n'
        "b = \"SELECT 1 WHERE status = 'error'\"\n"
        'c = {"error": 1}.get("complete")\n'
        'd = "cancelled"  # not a status: a reason\n'
    )
    try:
        assert [f.split(": ", 1)[1] for f in literals(sample)] == [
            "'pending'",
            "\"SELECT 1 WHERE status = 'error'\"",
        ]
    finally:
        sample.unlink()
