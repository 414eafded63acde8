"""The dynamic step shapes of a handler definition: `task:` (start a child task and wait for
it) and `map_over:` / `max_parallel:` (run the handler once per item of a list).

Parsed apart from the rest of the format so that other built-in step kinds (sleep, wait_for)
sit beside this one without touching it. Errors go through the caller's `error`, which names
the file and the step.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from server.domain.errors import TemplateInvalid
from server.domain.templates import ChildTaskSpec, HandlerTemplate
from server.domain.value_paths import parent_step, syntax_problem

CHILD_TASK_HANDLER = "tasker:task"
"""The `handler_class` stored for a `task:` step: the engine runs it, no user class does."""


DYNAMIC_FIELDS = frozenset({"task", "map_over", "max_parallel"})

Problem = Callable[[str], TemplateInvalid]

_TASK_KEYS = frozenset({"namespace", "name", "version", "context_from"})


def child_task(raw: Mapping[str, Any], error: Problem) -> ChildTaskSpec | None:
    """The step's `task:` block, validated (None when it has none)."""
    block = raw.get("task")
    if block is None:
        return None
    if not isinstance(block, dict):
        raise error("'task' must be a mapping with namespace and name")
    unknown = sorted(set(block) - _TASK_KEYS)
    if unknown:
        raise error(f"'task' has unknown keys {unknown} (allowed: {sorted(_TASK_KEYS)})")
    if raw.get("handler_class") is not None:
        raise error("a 'task' step runs a child task and takes no handler_class")
    if raw.get("map_over") is not None:
        raise error("a 'task' step cannot also map_over a list")
    for key in ("namespace", "name"):
        if not isinstance(block.get(key), str) or not block[key]:
            raise error(f"'task.{key}' must be a non-empty string")
    version = block.get("version")
    if version is not None and not isinstance(version, str):
        raise error("'task.version' must be a string")
    source = block.get("context_from", "context")
    problem = syntax_problem(source)
    if problem:
        raise error(f"'task.context_from' {problem}")
    _check_parent(source, raw, error, "task.context_from")
    return ChildTaskSpec(block["namespace"], block["name"], version, source)


def map_fields(raw: Mapping[str, Any], error: Problem) -> tuple[str | None, int | None]:
    """The step's `map_over` path and `max_parallel`, validated."""
    path = raw.get("map_over")
    limit = raw.get("max_parallel")
    if path is None:
        if limit is not None:
            raise error("'max_parallel' needs 'map_over'")
        return None, None
    problem = syntax_problem(path)
    if problem:
        raise error(f"'map_over' {problem}")
    _check_parent(path, raw, error, "map_over")
    if limit is None:
        limit = 10
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise error("'max_parallel' must be a positive integer")
    return path, limit


def _check_parent(path: str, raw: Mapping[str, Any], error: Problem, field: str) -> None:
    step = parent_step(path)
    if step is None:
        return
    parents = set(raw.get("depends_on_steps") or []) | {raw.get("depends_on_step")}
    if step not in parents:
        raise error(f"'{field}' reads parents.{step}, which is not a parent of this step")


def child_cycles(templates: Iterable[HandlerTemplate]) -> list[str]:
    """Handlers that start one another through `task:` steps, in a cycle (load-time refusal).

    Each cycle is reported as `a.b -> c.d -> a.b`. Versions are not told apart: a `task:` step
    without a version starts the newest one, so any version may close the loop.
    """
    edges: dict[str, set[str]] = {}
    for t in templates:
        here = f"{t.namespace}.{t.name}"
        for step in t.steps:
            if step.child_task is not None:
                there = f"{step.child_task.namespace}.{step.child_task.name}"
                edges.setdefault(here, set()).add(there)
    cycles: list[str] = []
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append(" -> ".join([*trail[trail.index(node) :], node]))
            return
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*trail, node])
        done.add(node)

    for start in sorted(edges):
        visit(start, [])
    return cycles
