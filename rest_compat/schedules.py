"""Schedule endpoints: list, create, show, change, delete, pause and resume.

Bodies and replies are declared here (the OpenAPI document is generated from them); every
rule (cron, time zone, handler, context schema) is checked by the service, so a bad value
is the same 422 with the same field as on GraphQL.
"""

from typing import Any, Literal

from pydantic import Field
from starlette.requests import Request

from rest_compat.operations import services_of
from rest_compat.params import Body, JsonObject, Query, Text, Version
from rest_compat.shapes import Shape, Timestamp
from server.domain.schedules import ScheduleView

CRON = (
    "A cron expression (croniter syntax): five fields, or six with a trailing seconds field, "
    "e.g. `*/5 * * * *`"
)
TIMEZONE = "IANA time zone the cron is read in (DST handled), e.g. Europe/Paris; default UTC"
CATCH_UP = (
    "After downtime: `latest` fires one task for the missed ticks, `all` one per missed tick "
    "(at most 100, the most recent)"
)
CatchUpValue = Literal["latest", "all"]


class ScheduleOut(Shape):
    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    namespace: str
    handler: str = Field(description="The handler's name")
    version: str | None = Field(description="Handler version; null means the latest")
    cron: str = Field(description=CRON)
    timezone: str = Field(description=TIMEZONE)
    context: JsonObject = Field(description="The context of every task it fires")
    catch_up: CatchUpValue = Field(description=CATCH_UP)
    paused: bool
    next_fire_at: Timestamp = Field(description="The next tick (UTC)")
    source: Literal["yaml", "api"] = Field(
        description="`yaml`: declared in a handler file (the file wins at the next start)"
    )


class ScheduleList(Shape):
    schedules: list[ScheduleOut]


class ScheduleListQuery(Query):
    namespace: Text | None = Field(None, description="Only this namespace's schedules")


class CreateScheduleBody(Body):
    name: Text = Field(min_length=1, max_length=128)
    namespace: Text = Field(min_length=1, max_length=128)
    handler: Text = Field(min_length=1, max_length=128, description="The handler's name")
    version: Version | None = Field(None, description="Defaults to the latest at each tick")
    cron: Text = Field(min_length=1, max_length=256, description=CRON)
    timezone: Text = Field("UTC", max_length=64, description=TIMEZONE)
    context: JsonObject = Field(default_factory=dict, description="Checked against the schema")
    catch_up: CatchUpValue = Field("latest", description=CATCH_UP)
    paused: bool = Field(False, description="Create it paused")


class UpdateScheduleBody(Body):
    name: Text | None = Field(None, min_length=1, max_length=128)
    version: Version | None = None
    cron: Text | None = Field(None, min_length=1, max_length=256, description=CRON)
    timezone: Text | None = Field(None, max_length=64, description=TIMEZONE)
    context: JsonObject | None = None
    catch_up: CatchUpValue | None = Field(None, description=CATCH_UP)


def schedule_out(view: ScheduleView) -> ScheduleOut:
    return ScheduleOut(
        id=str(view.id),
        name=view.name,
        namespace=view.namespace,
        handler=view.handler,
        version=view.version,
        cron=view.cron,
        timezone=view.timezone,
        context=view.context,
        catch_up=view.catch_up.value,
        paused=view.paused,
        next_fire_at=view.next_fire_at,
        source=view.source,  # type: ignore[arg-type]
    )


async def list_schedules(request: Request, query: ScheduleListQuery) -> ScheduleList:
    views = await services_of(request).schedules.list(query.namespace)
    return ScheduleList(schedules=[schedule_out(v) for v in views])


async def create_schedule(request: Request, body: CreateScheduleBody) -> ScheduleOut:
    values: dict[str, Any] = body.model_dump()
    return schedule_out(await services_of(request).schedules.create(values))


async def show_schedule(request: Request) -> ScheduleOut:
    return schedule_out(await services_of(request).schedules.get(request.path_params["id"]))


async def update_schedule(request: Request, body: UpdateScheduleBody) -> ScheduleOut:
    changes = body.model_dump(exclude_unset=True)
    view = await services_of(request).schedules.update(request.path_params["id"], changes)
    return schedule_out(view)


async def delete_schedule(request: Request) -> ScheduleOut:
    return schedule_out(await services_of(request).schedules.delete(request.path_params["id"]))


async def pause_schedule(request: Request) -> ScheduleOut:
    view = await services_of(request).schedules.set_paused(request.path_params["id"], True)
    return schedule_out(view)


async def resume_schedule(request: Request) -> ScheduleOut:
    view = await services_of(request).schedules.set_paused(request.path_params["id"], False)
    return schedule_out(view)
