"""GraphQL mutations of dynamic workflows: fork (`rerunTask`) and bulk cancel/retry/rerun.

Bulk mutations need `tasker.task:bulk` (the field's permission) and the single action's
permission besides, checked here against the same gate.
"""

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from graphql_schema.context import Info
from graphql_schema.errors import (
    ConflictErrorType,
    HandlerNotFoundErrorType,
    NotFoundErrorType,
    ValidationErrorType,
    expected_errors,
)
from graphql_schema.types.enums import TaskStatus
from graphql_schema.types.tasks import TaskType
from server.domain import permissions as need
from server.domain.views import Rerun
from server.services.bulk import BulkFilter, BulkResult


@strawberry.input(name="RerunTaskInput", description="Where a fork starts and what it changes.")
class RerunTaskInput:
    from_step: str = strawberry.field(
        description="The first step to run again; its descendants re-run too."
    )
    context: JSON | None = strawberry.field(
        default=None, description="Replaces the task's context (a JSON object)."
    )
    inputs: JSON | None = strawberry.field(
        default=None,
        description="Replaces the named steps' inputs: {step: inputs}, each fromStep or "
        "downstream of it.",
    )


@strawberry.input(name="TaskFilter", description="Which tasks a bulk action applies to.")
class TaskFilterInput:
    namespace: str | None = strawberry.field(default=None, description="Namespace.")
    name: str | None = strawberry.field(default=None, description="Handler name.")
    version: str | None = strawberry.field(default=None, description="Handler version.")
    status: TaskStatus | None = strawberry.field(default=None, description="Task status.")
    created_after: str | None = strawberry.field(
        default=None, description="ISO 8601 with a time zone."
    )
    created_before: str | None = strawberry.field(
        default=None, description="ISO 8601 with a time zone."
    )
    ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Only these.")

    def to_filter(self) -> BulkFilter:
        return BulkFilter(
            namespace=self.namespace,
            name=self.name,
            version=self.version,
            status=self.status.value if self.status else None,
            created_after=self.created_after,
            created_before=self.created_before,
            ids=[str(i) for i in self.ids] if self.ids is not None else None,
        )


@strawberry.type(name="BulkResult", description="What a bulk action changed.")
class BulkResultType:
    count: int = strawberry.field(description="How many tasks it changed.")
    ids: list[strawberry.ID] = strawberry.field(description="Their ids.")
    next_cursor: str | None = strawberry.field(
        description="More tasks matched than `limit`: pass it as `cursor` to go on."
    )

    @classmethod
    def of(cls, result: BulkResult) -> "BulkResultType":
        return cls(
            count=result.count,
            ids=[strawberry.ID(i) for i in result.ids],
            next_cursor=result.next_cursor,
        )


RerunTaskResult = Annotated[
    TaskType
    | NotFoundErrorType
    | ValidationErrorType
    | ConflictErrorType
    | HandlerNotFoundErrorType,
    strawberry.union("RerunTaskResult", description="The new task, or why not."),
]
BulkTasksResult = Annotated[
    BulkResultType | ValidationErrorType | NotFoundErrorType,
    strawberry.union("BulkTasksResult", description="The affected tasks, or why not."),
]
Limit = Annotated[
    int | None, strawberry.argument(description="Most tasks per call (default 1000, max 10000).")
]
TaskId = Annotated[strawberry.ID, strawberry.argument(description="The task to fork.")]
RerunInput = Annotated[RerunTaskInput, strawberry.argument(description="Fork from where.")]
Filter = Annotated[TaskFilterInput, strawberry.argument(description="Which tasks.")]
Cursor = Annotated[str | None, strawberry.argument(description="`nextCursor` of the last call.")]
FromStep = Annotated[
    str, strawberry.argument(description="The step every matched task re-runs from.")
]
NewContext = Annotated[
    JSON | None, strawberry.argument(description="Replaces each task's context (a JSON object).")
]


@expected_errors
async def rerun_task(info: Info, id: TaskId, input: RerunInput) -> RerunTaskResult:
    services = info.context.services
    subject = services.auth.subject(info.context.request.scope)
    req = Rerun(input.from_step, input.context, input.inputs, subject)
    return TaskType.from_view(await services.tasks.rerun_task(id, req))


@expected_errors
async def bulk_cancel_tasks(
    info: Info, filter: Filter, limit: Limit = None, cursor: Cursor = None
) -> BulkTasksResult:
    services = info.context.services
    services.auth.require(info.context.request.scope, [need.CANCEL_TASK])
    return BulkResultType.of(await services.tasks.bulk.cancel(filter.to_filter(), limit, cursor))


@expected_errors
async def bulk_retry_tasks(
    info: Info, filter: Filter, limit: Limit = None, cursor: Cursor = None
) -> BulkTasksResult:
    services = info.context.services
    services.auth.require(info.context.request.scope, [need.RETRY_TASK])
    return BulkResultType.of(await services.tasks.bulk.retry(filter.to_filter(), limit, cursor))


@expected_errors
async def bulk_rerun_tasks(
    info: Info,
    filter: Filter,
    from_step: FromStep,
    context: NewContext = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> BulkTasksResult:
    services = info.context.services
    services.auth.require(info.context.request.scope, [need.CREATE_TASK])
    req = Rerun(from_step, context, None, services.auth.subject(info.context.request.scope))
    result = await services.tasks.bulk.rerun(filter.to_filter(), req, limit, cursor)
    return BulkResultType.of(result)


rerun_field: RerunTaskResult = strawberry.mutation(
    resolver=rerun_task,
    description="Fork a finished task: a new task (forkedFrom) keeps the results of the steps "
    "not downstream of fromStep and re-runs the rest with the new input.",
)
bulk_cancel_field: BulkTasksResult = strawberry.mutation(
    resolver=bulk_cancel_tasks,
    description="Cancel every task the filter matches (needs tasker.task:cancel too).",
)
bulk_retry_field: BulkTasksResult = strawberry.mutation(
    resolver=bulk_retry_tasks,
    description="Retry every errored task the filter matches (needs tasker.task:retry too).",
)
bulk_rerun_field: BulkTasksResult = strawberry.mutation(
    resolver=bulk_rerun_tasks,
    description="Fork every finished task the filter matches from fromStep (needs "
    "tasker.task:create too); ids are the new tasks'.",
)
