"""Reads the web console needs that the rest of the API had no field for: finding tasks by
the first characters of their id, and tasks completed and failed per hour for a chart."""

from datetime import datetime
from typing import Annotated

import strawberry

from graphql_schema.context import Info
from graphql_schema.types.tasks import TaskType
from server.domain.errors import NotFound
from server.services import console_reads


def _arg(description: str) -> object:
    return strawberry.argument(description=description)


async def resolve_by_prefix(
    info: Info,
    prefix: Annotated[
        str, _arg("The id's first characters (hex digits, and dashes as in a UUID).")
    ],
    first: Annotated[int, _arg("At most this many (1 to 100).")] = 10,
) -> list[TaskType]:
    found = []
    for task_id in await console_reads.task_ids_by_prefix(prefix, first):
        try:
            view = await info.context.services.tasks.get_task(task_id)
        except NotFound:  # deleted in between
            continue
        found.append(TaskType.from_view(view))
    return found


@strawberry.type(description="Tasks that finished within one hour.")
class HourlyOutcome:
    hour: datetime = strawberry.field(description="Start of the hour (UTC).")
    completed: int = strawberry.field(description="Tasks that completed in it.")
    failed: int = strawberry.field(description="Tasks that ended in error in it.")


async def resolve_hourly(
    period_hours: Annotated[int, _arg("Hours to cover, 1 to 168 (the current one included).")] = 24,
) -> list[HourlyOutcome]:
    rows = await console_reads.hourly_outcomes(period_hours)
    return [HourlyOutcome(hour=h, completed=c, failed=f) for h, c, f in rows]


@strawberry.type(description="Reads for the web console.")
class ConsoleQuery:
    tasks_by_id_prefix: list[TaskType] = strawberry.field(
        resolver=resolve_by_prefix,
        description="Tasks whose id starts with these characters, newest first.",
    )
    hourly_task_outcomes: list[HourlyOutcome] = strawberry.field(
        resolver=resolve_hourly,
        description=(
            "Tasks completed and failed per hour, oldest first (closed hours from the "
            "analytics rollups, the rest live)."
        ),
    )
