"""`createTasks`: many tasks in one mutation, one typed result per input, in input order."""

from typing import Annotated

import strawberry

from graphql_schema.context import Info
from graphql_schema.errors import ValidationErrorType, error_result, expected_errors
from graphql_schema.mutations import CreateTaskInput, CreateTaskResult
from graphql_schema.types.tasks import TaskType
from server.domain.errors import DomainError, InvalidTaskConfig
from server.services.creation import MAX_BATCH


@strawberry.type(name="CreateTasksItem", description="What became of one input of createTasks.")
class CreateTasksItem:
    index: int = strawberry.field(description="The input's position in `inputs`.")
    created: bool = strawberry.field(
        description="True for a new task; false for an earlier one (same key) or an error."
    )
    result: CreateTaskResult = strawberry.field(
        description="The task, or why not (the errors createTask answers)."
    )


@strawberry.type(name="CreateTasksPayload", description="One result per input, in order.")
class CreateTasksPayload:
    results: list[CreateTasksItem] = strawberry.field(description="One per input, in order.")
    created: int = strawberry.field(description="New tasks.")
    existing: int = strawberry.field(description="Earlier tasks returned for a repeated key.")
    failed: int = strawberry.field(description="Inputs refused.")


CreateTasksResult = Annotated[
    CreateTasksPayload | ValidationErrorType,
    strawberry.union(
        "CreateTasksResult",
        description=f"Every input's result, or why none was read (over {MAX_BATCH} inputs).",
    ),
]
NewTasks = Annotated[
    list[CreateTaskInput],
    strawberry.argument(description=f"The tasks to create (1 to {MAX_BATCH})."),
]


@expected_errors
async def create_tasks(info: Info, inputs: NewTasks) -> CreateTasksResult:
    if not 1 <= len(inputs) <= MAX_BATCH:
        raise InvalidTaskConfig.of({"inputs": [f"must hold 1 to {MAX_BATCH} tasks"]})
    services = info.context.services
    subject = services.auth.subject(info.context.request.scope)
    outcomes = await services.tasks.create_tasks([i.to_request(subject) for i in inputs])
    items = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, DomainError):
            result = error_result(outcome)
            items.append(CreateTasksItem(index=index, created=False, result=result))  # type: ignore[arg-type]
            continue
        view, created = outcome
        task = TaskType.from_view(view)
        items.append(CreateTasksItem(index=index, created=created, result=task))
    failed = sum(isinstance(o, DomainError) for o in outcomes)
    made = sum(i.created for i in items)
    return CreateTasksPayload(
        results=items, created=made, existing=len(items) - made - failed, failed=failed
    )


@strawberry.type
class BatchMutations:
    """The batch creation field, mixed into Mutation by the schema."""

    create_tasks: CreateTasksResult = strawberry.mutation(
        resolver=create_tasks,
        description=(
            f"Create up to {MAX_BATCH} tasks in one request: one result per input, in order; "
            "a refused input refuses only itself."
        ),
    )
