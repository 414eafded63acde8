from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from graphql_schema.context import Info
from graphql_schema.types.enums import StepStatus
from graphql_schema.types.items import StepItemsType
from graphql_schema.types.transitions import TransitionType
from server.domain.views import BlockedReason, StepView
from server.services.map_progress import check_page_size, item_page


@strawberry.type(
    name="BlockedReason", description="Why a step that is neither running nor done is waiting."
)
class BlockedReasonType:
    code: str = strawberry.field(
        description=(
            "waiting_on_parents, backing_off, retries_exhausted, failed_permanently, cancelled, "
            "upstream_failed, no_live_worker, queued, scheduled (its task's delayed start has "
            "not come), concurrency_limited (waiting for a slot of `key`, held by `holders`), "
            "rate_limited (until the rate window has room), sleeping (a sleep step) or "
            "waiting_for_signal (a wait_for step)."
        )
    )
    message: str = strawberry.field(description="A sentence for people.")
    waiting_on: list[str] = strawberry.field(description="Parents not done yet, by name.")
    until: datetime | None = strawberry.field(
        description=(
            "When a backing-off step retries, a scheduled one's task starts, a rate-limited "
            "one's window has room, a sleep ends, or a signal wait times out."
        )
    )
    key: str | None = strawberry.field(
        default=None, description="The limit's key, for concurrency_limited."
    )
    holders: list[str] = strawberry.field(
        default_factory=list,
        description=(
            "The ids of the tasks (a handler limit) or steps (a step limit) holding the key's "
            "slots, for concurrency_limited."
        ),
    )
    signal: str | None = strawberry.field(
        default=None, description="The awaited signal, for waiting_for_signal."
    )

    @classmethod
    def from_view(cls, reason: BlockedReason) -> "BlockedReasonType":
        return cls(
            code=reason.code,
            message=reason.message,
            waiting_on=list(reason.waiting_on),
            until=reason.until,
            key=reason.key,
            holders=list(reason.holders),
            signal=reason.signal,
        )


async def resolve_blocked_reason(root: "StepType", info: Info) -> BlockedReasonType | None:
    deps = await info.context.loaders.dependencies.load(root.view.task_id)
    reason = None if deps is None else deps.reasons.get(root.view.name)
    return None if reason is None else BlockedReasonType.from_view(reason)


async def resolve_step_transitions(root: "StepType", info: Info) -> list[TransitionType]:
    rows = await info.context.loaders.step_transitions.load(root.view.id)
    return [TransitionType.from_view(r) for r in rows]


async def resolve_items(
    root: "StepType",
    info: Info,
    first: Annotated[int, strawberry.argument(description="Items per page, 1..1000.")] = 100,
    after: Annotated[
        int | None,
        strawberry.argument(description="Only items after this index (a page's nextAfter)."),
    ] = None,
) -> StepItemsType | None:
    check_page_size(first)
    counts = await info.context.loaders.item_counts.load(root.view.id)
    if counts is None:  # not a map step, or not started: no query of its own
        return None
    page = await item_page(root.view.id, counts, after=-1 if after is None else after, first=first)
    return StepItemsType.from_page(page)


@strawberry.type(name="Step", description="One workflow step of a task.")
class StepType:
    id: strawberry.ID = strawberry.field(description="Step id.")
    task_id: strawberry.ID = strawberry.field(description="The task it belongs to.")
    name: str = strawberry.field(description="Step name, unique within the task.")
    status: StepStatus = strawberry.field(description="Current state.")
    handler_class: str = strawberry.field(description="Python class that runs the step.")
    attempts: int = strawberry.field(description="Attempts started so far.")
    retry_limit: int = strawberry.field(description="Most attempts a retryable step gets.")
    retryable: bool = strawberry.field(description="Whether a failure is retried.")
    skippable: bool = strawberry.field(description="Whether the step may be bypassed.")
    skipped: bool = strawberry.field(
        description="Completed without running its handler: its runIf condition was false."
    )
    results: JSON | None = strawberry.field(description="What the handler returned.")
    inputs: JSON | None = strawberry.field(description="Inputs set on the step, if any.")
    started_at: datetime | None = strawberry.field(description="Start of the last attempt.")
    completed_at: datetime | None = strawberry.field(description="When it finished.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When a failed retryable step runs again."
    )
    last_error: str | None = strawberry.field(description="Message of the last failure.")
    error_class: str | None = strawberry.field(description="Exception class of the last failure.")
    parents: list[str] = strawberry.field(description="Steps it depends on, by name.")
    children: list[str] = strawberry.field(description="Steps that depend on it, by name.")
    duration_ms: int | None = strawberry.field(
        description="Milliseconds from start to completion of the last attempt."
    )
    created_at: datetime = strawberry.field(description="When the step was created.")
    updated_at: datetime = strawberry.field(description="Last change to the step.")
    view: strawberry.Private[StepView]

    blocked_reason: BlockedReasonType | None = strawberry.field(
        resolver=resolve_blocked_reason,
        description="Why the step is not running (null when running or done).",
    )
    transitions: list[TransitionType] = strawberry.field(
        resolver=resolve_step_transitions, description="The step's state changes, oldest first."
    )
    items: StepItemsType | None = strawberry.field(
        resolver=resolve_items,
        description="A map step's item progress and a page of its items (null for others).",
    )

    @classmethod
    def from_view(cls, view: StepView, task_id: str | None = None) -> "StepType":
        """`task_id`: the view's task id as text, when the caller has it already."""
        return cls(
            id=strawberry.ID(str(view.id)),
            task_id=strawberry.ID(task_id or str(view.task_id)),
            name=view.name,
            status=view.status,
            handler_class=view.handler_class,
            attempts=view.attempts,
            retry_limit=view.retry_limit,
            retryable=view.retryable,
            skippable=view.skippable,
            skipped=view.skipped,
            results=view.results,
            inputs=view.inputs,
            started_at=view.started_at,
            completed_at=view.completed_at,
            next_attempt_at=view.next_attempt_at,
            last_error=view.last_error,
            error_class=view.error_class,
            parents=list(view.parents),
            children=list(view.children),
            duration_ms=view.duration_ms,
            created_at=view.created_at,
            updated_at=view.updated_at,
            view=view,
        )
