"""Results of every ancestor of a step, read on demand.

The claim carries only the direct parents' results (`StepContext.parent_results`): that keeps
the hot claim statement small. A handler that needs a step further up asks for
`await step.upstream_results()`, which costs two indexed reads of the task's steps and edges,
paid only by the handlers that call it.
"""

from typing import Any
from uuid import UUID

from server.db.models import StepEdge, WorkflowStep


async def upstream_results(task_id: UUID, step_name: str) -> dict[str, Any]:
    """`{step name: results}` for every ancestor of the step (parents, their parents, ...)."""
    rows = await WorkflowStep.filter(task_id=task_id).values("id", "name", "results")
    edges = await StepEdge.filter(task_id=task_id).values_list("from_step_id", "to_step_id")
    by_id = {r["id"]: r for r in rows}
    parents: dict[int, list[int]] = {}
    for parent_id, child_id in edges:
        parents.setdefault(child_id, []).append(parent_id)
    start = next((r["id"] for r in rows if r["name"] == step_name), None)
    seen: set[int] = set()
    todo = list(parents.get(start, ())) if start is not None else []
    while todo:
        step_id = todo.pop()
        if step_id not in seen:
            seen.add(step_id)
            todo.extend(parents.get(step_id, ()))
    return {by_id[i]["name"]: by_id[i]["results"] for i in sorted(seen)}
