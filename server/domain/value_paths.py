"""Dotted paths that read a value from a task: `context.customer.id`,
`parents.<step>.results.items` (DESIGN §7 "Key expressions"). A path is data, never code.

`resolve` walks mappings by key and lists by a numeric segment; a segment that is absent is a
`BadPath` naming the whole path, which the engine turns into the step failing with `BAD_PATH`.
"""

from collections.abc import Mapping
from typing import Any

ROOTS = ("context", "parents")


class BadPath(Exception):
    """The path resolves to nothing."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"path '{path}' {problem}")
        self.path = path


def syntax_problem(path: object) -> str | None:
    """Why `path` is not a usable path (None when it is): checked at load time."""
    if not isinstance(path, str) or not path:
        return "must be a dotted path such as context.items"
    parts = path.split(".")
    if parts[0] not in ROOTS or any(not p for p in parts):
        return f"'{path}' must start with context or parents.<step> and have no empty segment"
    if parts[0] == "parents" and (len(parts) < 3 or parts[2] != "results"):
        return f"'{path}' must read parents.<step>.results..."
    return None


def parent_step(path: str) -> str | None:
    """The parent step a `parents.<step>...` path reads from, else None."""
    parts = path.split(".")
    return parts[1] if parts[0] == "parents" and len(parts) > 1 else None


def resolve(path: str, context: Any, parent_results: Mapping[str, Any]) -> Any:
    """The value at `path` (BadPath when any segment is absent)."""
    parts = path.split(".")
    if parts[0] == "context":
        value, rest = context, parts[1:]
    else:
        if len(parts) < 3 or parts[1] not in parent_results:
            raise BadPath(path, "names no parent step of this step")
        value, rest = parent_results[parts[1]], parts[3:]
    for part in rest:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise BadPath(path, f"resolves to nothing (no '{part}')")
    return value
