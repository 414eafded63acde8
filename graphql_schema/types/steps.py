from datetime import datetime
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from graphql_schema.context import Info
from graphql_schema.types.enums import StepStatus
from graphql_schema.types.items import StepItemsType
from graphql_schema.types.transitions import TransitionType
from graphql_schema.types.view_fields import reads
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
    """A step's GraphQL face: each field reads the step's view, so a page of steps copies
    nothing per step (a method of the object alone is read as plainly as an attribute:
    `graphql_schema.plain_fields`)."""

    view: strawberry.Private[StepView]
    task_text: strawberry.Private[str]
    """The view's task id as text (made once for all the steps of a task)."""

    @reads("Step id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.view.id))

    @reads("The task it belongs to.")
    def task_id(self) -> strawberry.ID:
        return strawberry.ID(self.task_text)

    @reads("Step name, unique within the task.")
    def name(self) -> str:
        return self.view.name

    @reads("Current state.")
    def status(self) -> StepStatus:
        return self.view.status

    @reads("Python class that runs the step.")
    def handler_class(self) -> str:
        return self.view.handler_class

    @reads("Attempts started so far.")
    def attempts(self) -> int:
        return self.view.attempts

    @reads("Most attempts a retryable step gets.")
    def retry_limit(self) -> int:
        return self.view.retry_limit

    @reads("Whether a failure is retried.")
    def retryable(self) -> bool:
        return self.view.retryable

    @reads("Whether the step may be bypassed.")
    def skippable(self) -> bool:
        return self.view.skippable

    @reads("Completed without running its handler: its runIf condition was false.")
    def skipped(self) -> bool:
        return self.view.skipped

    @reads("What the handler returned.")
    def results(self) -> JSON | None:
        return cast(JSON | None, self.view.results)

    @reads("Inputs set on the step, if any.")
    def inputs(self) -> JSON | None:
        return cast(JSON | None, self.view.inputs)

    @reads("Start of the last attempt.")
    def started_at(self) -> datetime | None:
        return self.view.started_at

    @reads("When it finished.")
    def completed_at(self) -> datetime | None:
        return self.view.completed_at

    @reads("When a failed retryable step runs again.")
    def next_attempt_at(self) -> datetime | None:
        return self.view.next_attempt_at

    @reads("Message of the last failure.")
    def last_error(self) -> str | None:
        return self.view.last_error

    @reads("Exception class of the last failure.")
    def error_class(self) -> str | None:
        return self.view.error_class

    @reads("Steps it depends on, by name.")
    def parents(self) -> list[str]:
        return list(self.view.parents)

    @reads("Steps that depend on it, by name.")
    def children(self) -> list[str]:
        return list(self.view.children)

    @reads("Milliseconds from start to completion of the last attempt.")
    def duration_ms(self) -> int | None:
        return self.view.duration_ms

    @reads("When the step was created.")
    def created_at(self) -> datetime:
        return self.view.created_at

    @reads("Last change to the step.")
    def updated_at(self) -> datetime:
        return self.view.updated_at

    # Without annotations, so that strawberry lists them after the methods above, as declared.
    blocked_reason = strawberry.field(
        resolver=resolve_blocked_reason,
        description="Why the step is not running (null when running or done).",
    )
    transitions = strawberry.field(
        resolver=resolve_step_transitions, description="The step's state changes, oldest first."
    )
    items = strawberry.field(
        resolver=resolve_items,
        description="A map step's item progress and a page of its items (null for others).",
    )

    @classmethod
    def from_view(cls, view: StepView, task_id: str | None = None) -> "StepType":
        """`task_id`: the view's task id as text, when the caller has it already."""
        return cls(view=view, task_text=task_id or str(view.task_id))
