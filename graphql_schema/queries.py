from typing import Annotated

import strawberry

from graphql_schema.context import Info
from graphql_schema.selections import fields_at
from graphql_schema.types.enums import TaskStatus
from graphql_schema.types.handlers import HandlerType, NamespaceType
from graphql_schema.types.limits import LimitUsageType
from graphql_schema.types.tasks import TaskConnectionType, TaskType, read_page_steps, read_task
from server.domain.errors import NotFound
from server.domain.views import TaskFilter
from server.services.flow_status import handlers_named, limit_usage


def _arg(description: str) -> object:
    return strawberry.argument(description=description)


def resolve_namespaces(info: Info) -> list[NamespaceType]:
    return [NamespaceType.from_info(n) for n in info.context.services.registry.namespaces()]


def resolve_namespace(
    info: Info, name: Annotated[str, _arg("Namespace name.")]
) -> NamespaceType | None:
    try:
        return NamespaceType.from_info(info.context.services.registry.namespace(name))
    except NotFound:
        return None


def resolve_handler(
    info: Info,
    namespace: Annotated[str, _arg("Namespace of the handler.")],
    name: Annotated[str, _arg("Handler name.")],
    version: Annotated[str | None, _arg("Exact version; omitted means latest.")] = None,
) -> HandlerType | None:
    try:
        return HandlerType.from_template(
            info.context.services.registry.get(namespace, name, version)
        )
    except NotFound:
        return None


async def resolve_task(
    info: Info, id: Annotated[strawberry.ID, _arg("Task id.")]
) -> TaskType | None:
    try:
        return await read_task(info, id)
    except NotFound:
        return None


async def resolve_tasks(
    info: Info,
    namespace: Annotated[str | None, _arg("Only this namespace.")] = None,
    name: Annotated[str | None, _arg("Only this handler name.")] = None,
    version: Annotated[str | None, _arg("Only this handler version.")] = None,
    status: Annotated[TaskStatus | None, _arg("Only tasks in this state.")] = None,
    first: Annotated[int, _arg("Page size (at most 100).")] = 25,
    after: Annotated[str | None, _arg("Cursor of the edge to start after.")] = None,
) -> TaskConnectionType:
    flt = TaskFilter(namespace=namespace, name=name, version=version, status=status)
    # Counted only when asked for: a count scans every matching task.
    counted = bool(fields_at(info, ("totalCount",)))
    page = await info.context.services.tasks.list_tasks_after(
        flt, first=first, after=after, count=counted
    )
    connection = TaskConnectionType.from_page(page, after)
    steps = fields_at(info, ("edges", "node", "steps"))
    if steps:
        await read_page_steps(info, [edge.node for edge in connection.edges], steps)
    return connection


async def resolve_limits(
    info: Info,
    handler: Annotated[
        str | None, _arg("`namespace/name` for one handler, `namespace` for a namespace's.")
    ] = None,
) -> list[LimitUsageType]:
    services = info.context.services
    try:
        templates = handlers_named(services.registry, handler)
    except NotFound:
        return []
    usage = await limit_usage(templates, now=services.changes.clock.now())
    return [LimitUsageType.from_view(u) for u in usage]


@strawberry.type(description="Queries over the handler catalogue.")
class CatalogueQueries:
    namespaces: list[NamespaceType] = strawberry.field(
        resolver=resolve_namespaces, description="Every namespace that has handlers."
    )
    namespace: NamespaceType | None = strawberry.field(
        resolver=resolve_namespace, description="One namespace, or null when it has no handlers."
    )
    handler: HandlerType | None = strawberry.field(
        resolver=resolve_handler,
        description="One handler (latest version by semver unless given), or null.",
    )
    limits: list[LimitUsageType] = strawberry.field(
        resolver=resolve_limits,
        description="Current use of every declared limit per key (empty for an unknown handler).",
    )


@strawberry.type(description="Queries over tasks.")
class TaskQueries:
    task: TaskType | None = strawberry.field(
        resolver=resolve_task, description="One task, or null when no task has this id."
    )
    tasks: TaskConnectionType = strawberry.field(
        resolver=resolve_tasks,
        description="Tasks, newest first, filtered; paginate with first/after.",
    )
