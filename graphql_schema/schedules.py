"""GraphQL schedules: `schedules`, `schedule(id)` and the create/update/pause/resume/delete
mutations, over the same service as REST's /tasker/schedules (same rules, same errors).

`ScheduleQuery` and `ScheduleMutation` are field mixins: Query and Mutation list them among
their bases; `graphql_schema.permissions.FIELD_PERMISSIONS` names each root field's grant.
"""

from datetime import datetime
from typing import Annotated, Any, cast

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
from server.domain.errors import NotFound
from server.domain.schedules import CatchUp, ScheduleView

CatchUpEnum = strawberry.enum(CatchUp, name="CatchUp", description="What to do with missed ticks.")


@strawberry.type(name="Schedule", description="A cron schedule that creates tasks of a handler.")
class ScheduleType:
    id: strawberry.ID = strawberry.field(description="Schedule id (a UUID).")
    name: str = strawberry.field(description="Unique per handler.")
    namespace: str = strawberry.field(description="Namespace of the handler.")
    handler: str = strawberry.field(description="The handler's name.")
    version: str | None = strawberry.field(description="Handler version; null: the latest.")
    cron: str = strawberry.field(description="Cron expression (a sixth field is seconds).")
    timezone: str = strawberry.field(description="IANA time zone the cron is read in.")
    context: JSON = strawberry.field(description="The context of every task it fires.")
    catch_up: CatchUpEnum = strawberry.field(  # type: ignore[valid-type]
        description="LATEST: one task for missed ticks; ALL: one per missed tick (at most 100)."
    )
    paused: bool = strawberry.field(description="A paused schedule fires nothing.")
    next_fire_at: datetime = strawberry.field(description="The next tick (UTC).")
    source: str = strawberry.field(description="`yaml` (a handler file) or `api`.")

    @classmethod
    def from_view(cls, view: ScheduleView) -> "ScheduleType":
        return cls(
            id=strawberry.ID(str(view.id)),
            name=view.name,
            namespace=view.namespace,
            handler=view.handler,
            version=view.version,
            cron=view.cron,
            timezone=view.timezone,
            context=cast(Any, view.context),
            catch_up=view.catch_up,
            paused=view.paused,
            next_fire_at=view.next_fire_at,
            source=view.source,
        )


@strawberry.input(name="CreateScheduleInput", description="A new schedule.")
class CreateScheduleInput:
    name: str = strawberry.field(description="Unique per handler.")
    namespace: str = strawberry.field(description="Namespace of the handler.")
    handler: str = strawberry.field(description="The handler's name.")
    cron: str = strawberry.field(description="Cron expression, e.g. `*/5 * * * *`.")
    version: str | None = strawberry.field(default=None, description="Default: the latest.")
    timezone: str | None = strawberry.field(default=None, description="Default: UTC.")
    context: JSON | None = strawberry.field(default=None, description="Default: {}.")
    catch_up: CatchUpEnum | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Default: LATEST."
    )
    paused: bool | None = strawberry.field(default=None, description="Create it paused.")

    def values(self) -> dict[str, Any]:
        given = {
            "name": self.name, "namespace": self.namespace, "handler": self.handler,
            "cron": self.cron, "version": self.version, "timezone": self.timezone,
            "context": self.context, "paused": self.paused,
            "catch_up": self.catch_up.value if self.catch_up else None,
        }  # fmt: skip
        return {k: v for k, v in given.items() if v is not None}


@strawberry.input(name="UpdateScheduleInput", description="Schedule fields to change.")
class UpdateScheduleInput:
    name: str | None = strawberry.field(default=None, description="New name.")
    version: str | None = strawberry.field(default=None, description="New handler version.")
    cron: str | None = strawberry.field(default=None, description="New cron expression.")
    timezone: str | None = strawberry.field(default=None, description="New time zone.")
    context: JSON | None = strawberry.field(default=None, description="New context.")
    catch_up: CatchUpEnum | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="New catch-up policy."
    )

    def changes(self) -> dict[str, Any]:
        given = {
            "name": self.name, "version": self.version, "cron": self.cron,
            "timezone": self.timezone, "context": self.context,
            "catch_up": self.catch_up.value if self.catch_up else None,
        }  # fmt: skip
        return {k: v for k, v in given.items() if v is not None}


CreateScheduleResult = Annotated[
    ScheduleType | ValidationErrorType | HandlerNotFoundErrorType | ConflictErrorType,
    strawberry.union("CreateScheduleResult", description="The new schedule, or why not."),
]
UpdateScheduleResult = Annotated[
    ScheduleType | NotFoundErrorType | ValidationErrorType | ConflictErrorType,
    strawberry.union("UpdateScheduleResult", description="The changed schedule, or why not."),
]
ScheduleCommandResult = Annotated[
    ScheduleType | NotFoundErrorType,
    strawberry.union("ScheduleCommandResult", description="The schedule after it, or why not."),
]
ScheduleId = Annotated[strawberry.ID, strawberry.argument(description="Schedule id.")]


async def resolve_schedules(
    info: Info,
    namespace: Annotated[
        str | None, strawberry.argument(description="Only this namespace.")
    ] = None,
) -> list[ScheduleType]:
    views = await info.context.services.schedules.list(namespace)
    return [ScheduleType.from_view(v) for v in views]


async def resolve_schedule(info: Info, id: ScheduleId) -> ScheduleType | None:
    try:
        return ScheduleType.from_view(await info.context.services.schedules.get(id))
    except NotFound:
        return None


@expected_errors
async def create_schedule(
    info: Info,
    input: Annotated[CreateScheduleInput, strawberry.argument(description="The schedule.")],
) -> CreateScheduleResult:
    return ScheduleType.from_view(await info.context.services.schedules.create(input.values()))


@expected_errors
async def update_schedule(
    info: Info,
    id: ScheduleId,
    input: Annotated[UpdateScheduleInput, strawberry.argument(description="Fields to change.")],
) -> UpdateScheduleResult:
    view = await info.context.services.schedules.update(id, input.changes())
    return ScheduleType.from_view(view)


@expected_errors
async def pause_schedule(info: Info, id: ScheduleId) -> ScheduleCommandResult:
    return ScheduleType.from_view(await info.context.services.schedules.set_paused(id, True))


@expected_errors
async def resume_schedule(info: Info, id: ScheduleId) -> ScheduleCommandResult:
    return ScheduleType.from_view(await info.context.services.schedules.set_paused(id, False))


@expected_errors
async def delete_schedule(info: Info, id: ScheduleId) -> ScheduleCommandResult:
    return ScheduleType.from_view(await info.context.services.schedules.delete(id))


@strawberry.type(description="Queries over cron schedules.")
class ScheduleQuery:
    schedules: list[ScheduleType] = strawberry.field(
        resolver=resolve_schedules, description="Every schedule, with its next fire time."
    )
    schedule: ScheduleType | None = strawberry.field(
        resolver=resolve_schedule, description="One schedule, or null when no such id."
    )


@strawberry.type(description="Commands on cron schedules.")
class ScheduleMutation:
    create_schedule: CreateScheduleResult = strawberry.mutation(
        resolver=create_schedule, description="Create a cron schedule."
    )
    update_schedule: UpdateScheduleResult = strawberry.mutation(
        resolver=update_schedule,
        description="Change a schedule; a new cron or time zone moves its next tick.",
    )
    pause_schedule: ScheduleCommandResult = strawberry.mutation(
        resolver=pause_schedule, description="Pause a schedule (idempotent)."
    )
    resume_schedule: ScheduleCommandResult = strawberry.mutation(
        resolver=resume_schedule,
        description="Resume a schedule (idempotent); ticks missed while paused are skipped.",
    )
    delete_schedule: ScheduleCommandResult = strawberry.mutation(
        resolver=delete_schedule, description="Delete a schedule; the tasks it fired stay."
    )
