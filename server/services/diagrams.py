"""Task diagrams: one task's step graph shaped for drawing, as data and as Mermaid text.

Pure functions over a `TaskView` and its `StepView`s, so every surface draws the same picture:
REST serves `task_diagram()` as the seed's JSON (`/tasks/{id}/task_diagrams`) and
`to_mermaid()` inside a standalone HTML page; GraphQL can expose the same objects.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote
from uuid import UUID

from server.domain.states import StepState, TaskState
from server.domain.views import StepView, TaskView

STATUS_FILL: Final[Mapping[StepState, str]] = {
    StepState.PENDING: "#E0E0E0",
    StepState.IN_PROGRESS: "#FFE4B5",
    StepState.COMPLETE: "#90EE90",
    StepState.ERROR: "#FF9999",
    StepState.CANCELLED: "#A9A9A9",
    StepState.RESOLVED_MANUALLY: "#ADD8E6",
}
"""Node fill per step status: the seed's green and moccasin, and a distinct colour for the rest."""
SKIPPED_STYLE: Final = "fill:#F5F5F5,stroke:#9E9E9E,stroke-dasharray:5 5,color:#757575"
"""A step skipped by its run_if: complete, but drawn dashed and grey (it did not run)."""

DIRECTION: Final = "TD"
DEFAULT_BASE_PATH: Final = "/tasker"


@dataclass(frozen=True, slots=True)
class DiagramNode:
    """One step as drawn."""

    id: str
    label: str
    shape: str
    style: str
    url: str
    status: StepState
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class DiagramEdge:
    """A dependency: `source_id` must finish before `target_id` may start."""

    source_id: str
    target_id: str
    label: str = "depends_on"
    type: str = "dependency"
    direction: str = "forward"


@dataclass(frozen=True, slots=True)
class TaskDiagram:
    """A task's steps and dependencies, ready to draw top-down."""

    task_id: UUID
    status: TaskState
    title: str
    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]
    direction: str = DIRECTION


def step_title(name: str) -> str:
    """A human title for a step name: `validate_payment` -> `Validate Payment`."""
    words = name.replace("-", " ").replace("_", " ").split()
    return " ".join(word[:1].upper() + word[1:] for word in words) or name


def step_path(task_id: UUID, step_name: str, base_path: str = DEFAULT_BASE_PATH) -> str:
    """Where a step is served: `/tasker/tasks/{id}/workflow_steps/{name}`."""
    return f"{base_path}/tasks/{task_id}/workflow_steps/{quote(step_name, safe='')}"


def task_diagram(
    task: TaskView,
    steps: Sequence[StepView],
    *,
    base_path: str = DEFAULT_BASE_PATH,
    children: Mapping[str, UUID] | None = None,
) -> TaskDiagram:
    """The diagram of `task`; `steps` in template order (as `StepService.list_steps` gives them).

    A step that started a child task (`children`: its id by step name) links to that task."""
    started = children or {}
    nodes = tuple(
        DiagramNode(
            id=step.name,
            label=step_title(step.name) + (" (child task)" if step.name in started else ""),
            shape="rectangle",
            style=SKIPPED_STYLE if step.skipped else f"fill:{STATUS_FILL[step.status]}",
            url=f"{base_path}/tasks/{started[step.name]}/task_diagrams?format=html"
            if step.name in started
            else step_path(task.id, step.name, base_path),
            status=step.status,
            duration_ms=step.duration_ms,
        )
        for step in steps
    )
    edges = tuple(
        DiagramEdge(source_id=parent, target_id=step.name)
        for step in steps
        for parent in step.parents
    )
    return TaskDiagram(task.id, task.status, task.full_name, nodes, edges)


def to_mermaid(diagram: TaskDiagram) -> str:
    """Mermaid flowchart source: one box per step, coloured by status, linked to the step."""
    # Step names are free text, so Mermaid ids are positional and names only appear in labels.
    ids = {node.id: f"step{i}" for i, node in enumerate(diagram.nodes)}
    lines = ["---", f"title: {json.dumps(diagram.title)}", "---", f"flowchart {diagram.direction}"]
    for node in diagram.nodes:
        state = "skipped" if node.style == SKIPPED_STYLE else node.status.value
        label = f"{node.label}<br/>{state}"
        if node.duration_ms is not None:
            label += f" · {node.duration_ms} ms"
        lines.append(f'    {ids[node.id]}["{_mermaid_text(label)}"]')
    lines.extend(
        f"    {ids[edge.source_id]} --> {ids[edge.target_id]}"
        for edge in diagram.edges
        if edge.source_id in ids and edge.target_id in ids
    )
    for node in diagram.nodes:
        lines.append(f"    style {ids[node.id]} {node.style}")
        lines.append(f'    click {ids[node.id]} href "{quote(node.url, safe="/:")}"')
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Escape a label for Mermaid's quoted text (its `#code;` entities), keeping our `<br/>`."""
    parts = text.split("<br/>")
    escaped = [
        part.replace("#", "#35;")
        .replace('"', "#34;")
        .replace("&", "#38;")
        .replace("<", "#60;")
        .replace(">", "#62;")
        for part in parts
    ]
    return "<br/>".join(escaped)
