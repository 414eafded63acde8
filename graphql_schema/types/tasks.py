from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import cast
from uuid import UUID

import strawberry
from graphql import FieldNode
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from graphql_schema.context import Info
from graphql_schema.selections import fields_at, selects_any
from graphql_schema.types.enums import TaskStatus
from graphql_schema.types.steps import BlockedReasonType, StepType
from graphql_schema.types.transitions import TransitionType
from graphql_schema.types.view_fields import reads
from server.domain.views import DependencyAnalysis, StepView, TaskSlice, TaskView
from server.services import queries
from server.services.children import children_of

EDGE_FIELDS = frozenset({"parents", "children"})
"""Step fields that need the step edges read."""
PAYLOAD_FIELDS = frozenset({"inputs", "results"})
"""Step fields that need the steps' JSON payloads read."""


@strawberry.type(name="BlockedStep", description="A step that cannot run now, and why.")
class BlockedStepType:
    step: str = strawberry.field(description="Step name.")
    reason: BlockedReasonType = strawberry.field(description="Why it is waiting.")


@strawberry.type(
    name="DependencyAnalysis", description="Which steps are done, runnable and blocked."
)
class DependencyAnalysisType:
    analysis: str = strawberry.field(description="A one-line summary of the task's progress.")
    ready_steps: list[str] = strawberry.field(description="Steps running or ready to run.")
    completed_steps: list[str] = strawberry.field(description="Steps complete or resolved.")
    blocked_steps: list[BlockedStepType] = strawberry.field(
        description="Every other step, with its reason."
    )

    @classmethod
    def from_view(cls, view: DependencyAnalysis) -> "DependencyAnalysisType":
        return cls(
            analysis=view.analysis,
            ready_steps=list(view.ready_steps),
            completed_steps=list(view.completed_steps),
            blocked_steps=[
                BlockedStepType(step=name, reason=BlockedReasonType.from_view(reason))
                for name, reason in view.blocked_steps
            ],
        )


async def read_task(info: Info, task_id: str) -> "TaskType":
    """The task; when its selection asks for its steps, read with them in one statement and
    kept on the task for the steps resolver (one round trip instead of two, and no loader:
    its set-up cost a tenth of such a query)."""
    tasks = info.context.services.tasks
    steps = fields_at(info, ("steps",))
    if not steps:
        return TaskType.from_view(await tasks.get_task(task_id))
    edges, _ = _shown(info, steps)  # its payloads are read whatever it shows
    view, step_views = await tasks.get_task_with_steps(task_id, with_edges=edges)
    if edges:  # steps with their edges are what step reasons and `dependencies` load too
        info.context.loaders.steps.prime(view.id, step_views)
    task = TaskType.from_view(view)
    task.steps_read = step_views
    return task


async def read_page_steps(info: Info, tasks: Sequence["TaskType"], steps: list[FieldNode]) -> None:
    """Reads the steps of a page's tasks in one batch, before the page is walked, and keeps
    each task's on it: the steps resolver then answers at once, where a loader's batch cost
    every task of the page a coroutine, a future and a task of the event loop. `steps` are
    the page's `node { steps }` fields (their union decides the columns read)."""
    if not tasks:
        return
    edges, payloads = _shown(info, steps)
    # The batch read itself, not the loader's `load_many`: a future per task, their gather
    # and the batch's own event-loop task, for the one statement the page needs.
    found = await queries.steps_by_task(
        [t.view.id for t in tasks], with_edges=edges, with_payloads=payloads
    )
    if edges:  # steps with their edges are what step reasons and `dependencies` load too
        info.context.loaders.steps.prime_many(found)
    for task in tasks:
        task.steps_read = found[task.view.id]


def resolve_steps(root: "TaskType", info: Info) -> list[StepType] | Awaitable[list[StepType]]:
    """The task's steps: at once when read with the task or its page, else through a loader
    (an awaitable), so a page's steps cost no coroutine per task."""
    if root.steps_read is not None:
        return _step_types(root.steps_read, str(root.view.id))
    loader = _steps_loader(info, info._raw_info.field_nodes)
    return _load_steps(loader.load(root.view.id), str(root.view.id))


def _steps_loader(info: Info, steps: Sequence[FieldNode]) -> DataLoader[UUID, Sequence[StepView]]:
    """The steps loader for these `steps` fields (`_shown`)."""
    return info.context.loaders.steps_for(*_shown(info, steps))


def _shown(info: Info, steps: Sequence[FieldNode]) -> tuple[bool, bool]:
    """Whether any of these `steps` fields shows the step edges, and their payloads (each
    left out of the read otherwise); steps with their edges are read with their payloads,
    as the loader other readers of them share (`Loaders.steps`) reads them."""
    fragments = info._raw_info.fragments
    edges = selects_any(steps, fragments, EDGE_FIELDS)
    return edges, edges or selects_any(steps, fragments, PAYLOAD_FIELDS)


async def _load_steps(views: Awaitable[Sequence[StepView]], task_id: str) -> list[StepType]:
    return _step_types(await views, task_id)


def _step_types(views: Sequence[StepView], task_id: str) -> list[StepType]:
    """`task_id`: the steps' task id as text, made once for them all."""
    return [StepType.from_view(s, task_id) for s in views]


async def resolve_task_transitions(root: "TaskType", info: Info) -> list[TransitionType]:
    rows = await info.context.loaders.task_transitions.load(root.view.id)
    return [TransitionType.from_view(r) for r in rows]


async def resolve_parent(root: "TaskType", info: Info) -> "TaskType | None":
    parent_id = root.view.parent_task_id
    if parent_id is None:
        return None
    view = await info.context.loaders.task.load(parent_id)
    return None if view is None else TaskType.from_view(view)


async def resolve_children(root: "TaskType", info: Info) -> list["TaskType"]:
    return [TaskType.from_view(v) for v in await children_of(root.view.id)]


async def resolve_dependencies(root: "TaskType", info: Info) -> DependencyAnalysisType:
    info.context.loaders.task.prime(root.view.id, root.view)  # analyse the task as read
    deps = await info.context.loaders.dependencies.load(root.view.id)
    assert deps is not None  # its task is in the task loader
    return DependencyAnalysisType.from_view(deps.analysis)


@strawberry.type(name="Task", description="One run of a handler, with its own context.")
class TaskType:
    """A task's GraphQL face: each field reads the task's view (as `StepType` does)."""

    view: strawberry.Private[TaskView]
    steps_read: strawberry.Private[Sequence[StepView] | None] = None
    """Its steps, when read with it (`read_task`) or its page (`read_page_steps`): read for
    every `steps` field of its selection, with the columns and edges they show."""

    @reads("Task id (a UUID).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.view.id))

    @reads("Namespace of its handler.")
    def namespace(self) -> str:
        return self.view.namespace

    @reads("Name of its handler.")
    def name(self) -> str:
        return self.view.name

    @reads("Version of its handler.")
    def version(self) -> str:
        return self.view.version

    @reads("`namespace.name@version`.")
    def full_name(self) -> str:
        return self.view.full_name

    @reads("Current state.")
    def status(self) -> TaskStatus:
        return self.view.status

    @reads("The input the task was created with.")
    def context(self) -> JSON | None:
        return cast(JSON | None, self.view.context)

    @reads("Who or what created the task.")
    def initiator(self) -> str | None:
        return self.view.initiator

    @reads("System the request came from.")
    def source_system(self) -> str | None:
        return self.view.source_system

    @reads("Why the task exists.")
    def reason(self) -> str | None:
        return self.view.reason

    @reads("Free-form labels.")
    def tags(self) -> list[str]:
        return list(self.view.tags)

    @reads("Steps skipped at creation.")
    def bypass_steps(self) -> list[str]:
        return list(self.view.bypass_steps)

    @reads("When the task was created.")
    def created_at(self) -> datetime:
        return self.view.created_at

    @reads("Last change to the task.")
    def updated_at(self) -> datetime:
        return self.view.updated_at

    @reads("When it reached its end.")
    def completed_at(self) -> datetime | None:
        return self.view.completed_at

    @reads("A delayed start: no step runs before it (null: at once).")
    def run_at(self) -> datetime | None:
        return self.view.run_at

    @reads("Paused (the task or its handler): no new step starts until resumed.")
    def paused(self) -> bool:
        return self.view.paused

    @reads("The schedule that fired this task (null: made by a caller).")
    def schedule_id(self) -> strawberry.ID | None:
        return _id_or_none(self.view.schedule_id)

    @reads("The schedule tick this task was fired for.")
    def scheduled_for(self) -> datetime | None:
        return self.view.scheduled_for

    @reads("1 (low) .. 3 (high).")
    def priority(self) -> int:
        return self.view.priority

    @reads("The task this one re-runs (rerunTask); null for a task created directly.")
    def forked_from(self) -> strawberry.ID | None:
        return _id_or_none(self.view.forked_from)

    @reads("The task whose step started this one (a child task); null if none.")
    def parent_task_id(self) -> strawberry.ID | None:
        return _id_or_none(self.view.parent_task_id)

    @reads("That step's name.")
    def parent_step(self) -> str | None:
        return self.view.parent_step

    # Without annotations, so that strawberry lists them after the methods above, as declared.
    parent = strawberry.field(
        resolver=resolve_parent, description="The task whose step started this one."
    )
    children = strawberry.field(
        resolver=resolve_children,
        description="The tasks this task's steps started (task: steps, start_task).",
    )
    steps = strawberry.field(
        resolver=resolve_steps,
        graphql_type=list[StepType],  # the resolver may answer with an awaitable of it
        description="The task's steps, in template order.",
    )
    transitions = strawberry.field(
        resolver=resolve_task_transitions,
        description="Every state change of the task and its steps, oldest first.",
    )
    dependencies = strawberry.field(
        resolver=resolve_dependencies,
        description="Which steps are done, runnable and blocked, and why.",
    )

    @classmethod
    def from_view(cls, view: TaskView) -> "TaskType":
        return cls(view=view)


def _id_or_none(value: object | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


def _cursor(self: "TaskEdgeType") -> str:
    return queries.encode_cursor(self.node.view)  # made only when asked for


@strawberry.type(name="TaskEdge", description="A task in a page, with its cursor.")
class TaskEdgeType:
    cursor: str = strawberry.field(
        resolver=_cursor, description="Pass as `after` to get the tasks that follow."
    )
    node: TaskType = strawberry.field(description="The task.")


@strawberry.type(name="PageInfo", description="Where a page sits in the whole list.")
class PageInfoType:
    has_next_page: bool = strawberry.field(description="Whether more tasks follow.")
    has_previous_page: bool = strawberry.field(description="Whether this page started `after`.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge.")


def _total_count(self: "TaskConnectionType") -> int:
    if self.counted is None:
        raise RuntimeError("the tasks were not counted")  # the resolver counts when asked
    return self.counted


@strawberry.type(
    name="TaskConnection", description="A page of tasks, newest first (Relay connection)."
)
class TaskConnectionType:
    counted: strawberry.Private[int | None]
    """The total, counted only when the document asks for `totalCount` (`resolve_tasks`)."""

    total_count: int = strawberry.field(
        resolver=_total_count, description="Tasks matching the filter, all pages."
    )
    edges: list[TaskEdgeType] = strawberry.field(description="The tasks of this page.")
    page_info: PageInfoType = strawberry.field(description="Pagination state.")

    @classmethod
    def from_page(cls, page: TaskSlice, after: str | None) -> "TaskConnectionType":
        items = page.items
        return cls(
            counted=page.total_count,
            edges=[TaskEdgeType(node=TaskType.from_view(t)) for t in items],
            page_info=PageInfoType(
                has_next_page=page.has_next,
                has_previous_page=after is not None,
                start_cursor=queries.encode_cursor(items[0]) if items else None,
                end_cursor=queries.encode_cursor(items[-1]) if items else None,
            ),
        )
