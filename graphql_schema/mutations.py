from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from graphql_schema import dynamic
from graphql_schema.context import Info
from graphql_schema.errors import (
    ConflictErrorType,
    HandlerNotFoundErrorType,
    InvalidTransitionErrorType,
    NotFoundErrorType,
    ValidationErrorType,
    expected_errors,
)
from graphql_schema.schedules import ScheduleMutation
from graphql_schema.types.handlers import HandlerPauseType
from graphql_schema.types.signals import SignalType
from graphql_schema.types.steps import StepType
from graphql_schema.types.tasks import TaskType
from server.domain.views import CreateTask
from server.services.pausing import HandlerPause


@strawberry.input(name="CreateTaskInput", description="What to run, and with which context.")
class CreateTaskInput:
    namespace: str = strawberry.field(description="Namespace of the handler.")
    name: str = strawberry.field(description="Handler name.")
    context: JSON = strawberry.field(
        description=(
            "The task's input: a JSON object (no NUL, signed 64-bit integers, finite numbers, "
            "at most 64 levels deep and 1 MiB)."
        )
    )
    version: str | None = strawberry.field(
        default=None, description="Handler version; omitted means the latest by semver."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=(
            "Repeating a request with the same key returns the first task (at most 255 "
            "characters; with authentication on, keys belong to the caller's token subject)."
        ),
    )
    initiator: str | None = strawberry.field(
        default=None, description="Who asks (at most 255 characters)."
    )
    source_system: str | None = strawberry.field(
        default=None, description="Calling system (at most 255 characters)."
    )
    reason: str | None = strawberry.field(default=None, description="Why the task exists.")
    tags: list[str] | None = strawberry.field(default=None, description="Free-form labels.")
    bypass_steps: list[str] | None = strawberry.field(
        default=None, description="Skippable steps to mark resolved at creation."
    )
    # Text, not DateTime: a value that does not parse is then a ValidationError with the
    # same field and code as on REST, not a query error.
    run_at: str | None = strawberry.field(
        default=None,
        description=(
            "Start no earlier than this ISO 8601 time with a time zone (e.g. "
            "2027-01-31T09:00:00Z); a past time starts at once. Not with delaySeconds."
        ),
    )
    delay_seconds: float | None = strawberry.field(
        default=None,
        description="Start this many seconds after creation (0 to a year). Not with runAt.",
    )
    debounce_key: str | None = strawberry.field(
        default=None,
        description=(
            "Collapse creations with this key (a context path such as context.document_id, "
            "or a constant) within debounceSeconds into one task, started debounceSeconds "
            "after the last of them with its context. Overrides the handler's debounce."
        ),
    )
    debounce_seconds: float | None = strawberry.field(
        default=None, description="The debounce window in seconds (with debounceKey)."
    )
    priority: int | None = strawberry.field(
        default=None,
        description=(
            "1 (low) .. 3 (high); default the handler's priority (else 2). Orders the steps "
            "waiting for a concurrency slot. Outside 1..3: a ValidationError."
        ),
    )

    def to_request(self, subject: str | None) -> CreateTask:
        return CreateTask(
            namespace=self.namespace,
            name=self.name,
            context=self.context,
            version=self.version,
            initiator=self.initiator,
            source_system=self.source_system,
            reason=self.reason,
            tags=tuple(self.tags or ()),
            bypass_steps=tuple(self.bypass_steps or ()),
            idempotency_key=self.idempotency_key,
            run_at=self.run_at,
            delay_seconds=self.delay_seconds,
            debounce_key=self.debounce_key,
            debounce_seconds=self.debounce_seconds,
            priority=self.priority,
            subject=subject,
        )


@strawberry.input(name="UpdateTaskInput", description="Task fields that may change.")
class UpdateTaskInput:
    reason: str | None = strawberry.field(default=None, description="New reason.")
    tags: list[str] | None = strawberry.field(default=None, description="New labels.")


@strawberry.input(name="UpdateStepInput", description="Step settings that may change.")
class UpdateStepInput:
    retry_limit: int | None = strawberry.field(
        default=None, description="Most attempts the step gets (0 to 1000)."
    )
    inputs: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Inputs for the step's next attempts (null clears)."
    )

    def changes(self) -> dict[str, Any]:
        given = {"retry_limit": self.retry_limit, "inputs": self.inputs}
        return {k: v for k, v in given.items() if v is not strawberry.UNSET}


CreateTaskResult = Annotated[
    TaskType | ValidationErrorType | HandlerNotFoundErrorType | ConflictErrorType,
    strawberry.union("CreateTaskResult", description="The new (or repeated) task, or why not."),
]
UpdateTaskResult = Annotated[
    TaskType | NotFoundErrorType | ValidationErrorType,
    strawberry.union("UpdateTaskResult", description="The updated task, or why not."),
]
TaskCommandResult = Annotated[
    TaskType | NotFoundErrorType | InvalidTransitionErrorType,
    strawberry.union("TaskCommandResult", description="The task after the command, or why not."),
]
HandlerPauseResult = Annotated[
    HandlerPauseType | HandlerNotFoundErrorType | ValidationErrorType,
    strawberry.union("HandlerPauseResult", description="The handler's pauses, or why not."),
]
UpdateStepResult = Annotated[
    StepType | NotFoundErrorType | ValidationErrorType,
    strawberry.union("UpdateStepResult", description="The updated step, or why not."),
]
StepCommandResult = Annotated[
    StepType | NotFoundErrorType | InvalidTransitionErrorType,
    strawberry.union("StepCommandResult", description="The step after the command, or why not."),
]
ResolveStepResult = Annotated[
    StepType | NotFoundErrorType | InvalidTransitionErrorType | ValidationErrorType,
    strawberry.union("ResolveStepResult", description="The resolved step, or why not."),
]
SendSignalResult = Annotated[
    SignalType | NotFoundErrorType | ValidationErrorType | ConflictErrorType,
    strawberry.union("SendSignalResult", description="The delivered signal, or why not."),
]
TaskId = Annotated[strawberry.ID, strawberry.argument(description="Task id.")]
HandlerNamespace = Annotated[str, strawberry.argument(description="Namespace of the handler.")]
HandlerName = Annotated[str, strawberry.argument(description="Handler name.")]
HandlerVersion = Annotated[
    str | None, strawberry.argument(description="One version; omitted means every version.")
]
StepRef = Annotated[str, strawberry.argument(description="Step name, or step id.")]
Results = Annotated[JSON | None, strawberry.argument(description="Results to record.")]
Reason = Annotated[str | None, strawberry.argument(description="Why, for the record.")]
NewTask = Annotated[CreateTaskInput, strawberry.argument(description="The task to create.")]
TaskChanges = Annotated[UpdateTaskInput, strawberry.argument(description="Fields to change.")]
StepChanges = Annotated[UpdateStepInput, strawberry.argument(description="Settings to change.")]


@expected_errors
async def create_task(info: Info, input: NewTask) -> CreateTaskResult:
    services = info.context.services
    subject = services.auth.subject(info.context.request.scope)
    task, _created = await services.tasks.create_task(input.to_request(subject))
    return TaskType.from_view(task)


@expected_errors
async def update_task(info: Info, id: TaskId, input: TaskChanges) -> UpdateTaskResult:
    tasks = info.context.services.tasks
    view = await tasks.update_task(id, reason=input.reason, tags=input.tags)
    return TaskType.from_view(view)


@expected_errors
async def cancel_task(info: Info, id: TaskId) -> TaskCommandResult:
    return TaskType.from_view(await info.context.services.tasks.cancel_task(id))


@expected_errors
async def retry_task(info: Info, id: TaskId) -> TaskCommandResult:
    return TaskType.from_view(await info.context.services.tasks.retry_task(id))


@expected_errors
async def pause_task(info: Info, id: TaskId) -> TaskCommandResult:
    return TaskType.from_view(await info.context.services.pausing.pause_task(id))


@expected_errors
async def resume_task(info: Info, id: TaskId) -> TaskCommandResult:
    return TaskType.from_view(await info.context.services.pausing.resume_task(id))


def _pause_state(
    namespace: str, name: str, version: str | None, state: HandlerPause
) -> HandlerPauseType:
    """A handler's pauses after a pause or a resume."""
    return HandlerPauseType(
        namespace=namespace,
        name=name,
        version=version,
        paused=state.paused,
        paused_versions=list(state.versions),
    )


@expected_errors
async def pause_handler(
    info: Info, namespace: HandlerNamespace, name: HandlerName, version: HandlerVersion = None
) -> HandlerPauseResult:
    state = await info.context.services.pausing.pause_handler(namespace, name, version)
    return _pause_state(namespace, name, version, state)


@expected_errors
async def resume_handler(
    info: Info, namespace: HandlerNamespace, name: HandlerName, version: HandlerVersion = None
) -> HandlerPauseResult:
    state = await info.context.services.pausing.resume_handler(namespace, name, version)
    return _pause_state(namespace, name, version, state)


@expected_errors
async def update_step(
    info: Info, task_id: TaskId, step: StepRef, input: StepChanges
) -> UpdateStepResult:
    steps = info.context.services.steps
    return StepType.from_view(await steps.update_step(task_id, step, **input.changes()))


@expected_errors
async def cancel_step(info: Info, task_id: TaskId, step: StepRef) -> StepCommandResult:
    return StepType.from_view(await info.context.services.steps.cancel_step(task_id, step))


@expected_errors
async def retry_step(info: Info, task_id: TaskId, step: StepRef) -> StepCommandResult:
    return StepType.from_view(await info.context.services.steps.retry_step(task_id, step))


@expected_errors
async def resolve_step(
    info: Info, task_id: TaskId, step: StepRef, results: Results = None, reason: Reason = None
) -> ResolveStepResult:
    steps = info.context.services.steps
    view = await steps.resolve_step(task_id, step, results=results, reason=reason)
    return StepType.from_view(view)


@expected_errors
async def send_signal(
    info: Info,
    task_id: TaskId,
    name: Annotated[str, strawberry.argument(description="The signal a wait_for step awaits.")],
    payload: Annotated[
        JSON | None, strawberry.argument(description="A JSON object: the step's results.")
    ] = None,
    signal_id: Annotated[
        str | None,
        strawberry.argument(description="Delivered once per id; a repeat answers the first."),
    ] = None,
) -> SendSignalResult:
    signals = info.context.services.signals
    return SignalType.from_view(await signals.send(task_id, name, payload, signal_id))


@strawberry.type(name="Mutation", description="Commands on tasks and steps.")
class Mutation(ScheduleMutation):
    create_task: CreateTaskResult = strawberry.mutation(
        resolver=create_task,
        description="Create a task; repeating an idempotency key returns the first task.",
    )
    update_task: UpdateTaskResult = strawberry.mutation(
        resolver=update_task, description="Change a task's reason and/or tags."
    )
    cancel_task: TaskCommandResult = strawberry.mutation(
        resolver=cancel_task, description="Cancel a task and its unfinished steps (idempotent)."
    )
    retry_task: TaskCommandResult = strawberry.mutation(
        resolver=retry_task, description="Re-run the failed steps of a task in error."
    )
    pause_task: TaskCommandResult = strawberry.mutation(
        resolver=pause_task,
        description="Pause a task: running steps finish, no new step starts (idempotent).",
    )
    resume_task: TaskCommandResult = strawberry.mutation(
        resolver=resume_task,
        description="Resume a paused task: its ready steps start at once (idempotent).",
    )
    pause_handler: HandlerPauseResult = strawberry.mutation(
        resolver=pause_handler,
        description=(
            "Pause a handler (all versions, or one): no step of its tasks, present and "
            "future, starts until it is resumed (idempotent)."
        ),
    )
    resume_handler: HandlerPauseResult = strawberry.mutation(
        resolver=resume_handler,
        description="Resume a paused handler: its tasks' ready steps start at once.",
    )
    rerun_task: dynamic.RerunTaskResult = dynamic.rerun_field
    bulk_cancel_tasks: dynamic.BulkTasksResult = dynamic.bulk_cancel_field
    bulk_retry_tasks: dynamic.BulkTasksResult = dynamic.bulk_retry_field
    bulk_rerun_tasks: dynamic.BulkTasksResult = dynamic.bulk_rerun_field
    update_step: UpdateStepResult = strawberry.mutation(
        resolver=update_step, description="Change a step's retry limit and/or inputs."
    )
    cancel_step: StepCommandResult = strawberry.mutation(
        resolver=cancel_step, description="Cancel a pending, running or failed step (idempotent)."
    )
    retry_step: StepCommandResult = strawberry.mutation(
        resolver=retry_step, description="Re-run a failed step now, with a fresh attempt budget."
    )
    resolve_step: ResolveStepResult = strawberry.mutation(
        resolver=resolve_step,
        description="Mark a step resolved by hand (idempotent); dependants proceed.",
    )
    send_signal: SendSignalResult = strawberry.mutation(
        resolver=send_signal,
        description=(
            "Deliver a signal to the task's wait_for step: it completes with the payload, or "
            "the signal is kept until the step is reached."
        ),
    )
