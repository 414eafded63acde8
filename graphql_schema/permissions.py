"""Which permission (DESIGN §5.3) each GraphQL field needs, named by the use case it serves in
the core's table (`server.domain.permissions`), which REST reads too.

Every root field (Query, Mutation, Subscription) and every field that reads another resource
(relations loaded separately) is listed. A field not listed needs nothing beyond the field that
returned its object (e.g. `Task.status` under `Query.tasks` is covered by `tasker.task:index`).
`required_permissions` walks a parsed document the same way, aliases and fragments included.
"""

from collections.abc import Mapping
from typing import Final

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)

from server.domain import permissions as need
from server.domain.principal import KNOWN_PERMISSIONS

__all__ = ["FIELD_PERMISSIONS", "KNOWN_PERMISSIONS", "permission_for", "required_permissions"]

FIELD_PERMISSIONS: Final[Mapping[str, str]] = {
    # Queries
    "Query.namespaces": need.LIST_HANDLERS,
    "Query.namespace": need.LIST_HANDLERS,
    "Query.handler": need.SHOW_HANDLER,
    "Query.limits": need.LIST_HANDLERS,
    "Query.task": need.SHOW_TASK,
    "Query.tasks": need.LIST_TASKS,
    "Query.analytics": need.ANALYTICS,
    "Query.tasksByIdPrefix": need.LIST_TASKS,
    "Query.hourlyTaskOutcomes": need.ANALYTICS,
    "Query.health": need.HEALTH_STATUS,
    "Query.schedules": need.LIST_SCHEDULES,
    "Query.schedule": need.SHOW_SCHEDULE,
    # Relations
    "Namespace.handlers": need.LIST_HANDLERS,
    "Handler.versions": need.SHOW_HANDLER,
    "Handler.contextSchema": need.SHOW_HANDLER,
    "Handler.stepTemplates": need.SHOW_HANDLER,
    "Handler.dependencyGraph": need.SHOW_HANDLER,
    "Handler.paused": need.SHOW_HANDLER,
    "Task.steps": need.READ_STEPS,
    "Task.transitions": need.SHOW_TASK,
    "Task.dependencies": need.READ_STEPS,
    "Task.parent": need.SHOW_TASK,
    "Task.children": need.SHOW_TASK,
    "Step.blockedReason": need.SHOW_STEP,
    "Step.transitions": need.SHOW_STEP,
    "Step.items": need.SHOW_STEP,
    "Analytics.performance": need.ANALYTICS,
    "Analytics.bottlenecks": need.ANALYTICS,
    # Mutations
    "Mutation.createTask": need.CREATE_TASK,
    "Mutation.createTasks": need.CREATE_TASK,
    "Mutation.updateTask": need.UPDATE_TASK,
    "Mutation.cancelTask": need.CANCEL_TASK,
    "Mutation.retryTask": need.RETRY_TASK,
    "Mutation.pauseTask": need.PAUSE_TASK,
    "Mutation.resumeTask": need.PAUSE_TASK,
    "Mutation.pauseHandler": need.PAUSE_HANDLER,
    "Mutation.resumeHandler": need.PAUSE_HANDLER,
    "Mutation.rerunTask": need.CREATE_TASK,
    "Mutation.bulkCancelTasks": need.BULK_TASKS,
    "Mutation.bulkRetryTasks": need.BULK_TASKS,
    "Mutation.bulkRerunTasks": need.BULK_TASKS,
    "Mutation.updateStep": need.UPDATE_STEP,
    "Mutation.cancelStep": need.CANCEL_STEP,
    "Mutation.retryStep": need.RETRY_STEP,
    "Mutation.resolveStep": need.UPDATE_STEP,
    "Mutation.createSchedule": need.CREATE_SCHEDULE,
    "Mutation.updateSchedule": need.UPDATE_SCHEDULE,
    "Mutation.pauseSchedule": need.UPDATE_SCHEDULE,
    "Mutation.resumeSchedule": need.UPDATE_SCHEDULE,
    "Mutation.deleteSchedule": need.DELETE_SCHEDULE,
    "Mutation.sendSignal": need.SIGNAL_TASK,
    # Subscriptions
    "Subscription.taskEvents": need.SHOW_TASK,
    "Subscription.namespaceEvents": need.LIST_TASKS,
}


def permission_for(type_name: str, field_name: str) -> str | None:
    """The permission a field needs by itself (None: covered by the field above it)."""
    return FIELD_PERMISSIONS.get(f"{type_name}.{field_name}")


class _Collector(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.needed: set[str] = set()
        self.spreads: set[str] = set()

    def enter_field(self, node: FieldNode, *_args: object) -> None:
        parent = self.type_info.get_parent_type()
        if parent is not None and (permission := permission_for(parent.name, node.name.value)):
            self.needed.add(permission)

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_args: object) -> None:
        self.spreads.add(node.name.value)


def required_permissions(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None = None
) -> set[str]:
    """Every permission the fields of `document` need, aliases and fragments included.

    Only the operation that runs counts (the one named, or the only one) with the fragments it
    reaches, so a client may keep other operations in the document it sends (as GraphiQL
    does). When that operation cannot be told (several and no name), the whole document
    counts: nothing is ever executed unchecked.
    """
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        op
        for op in operations
        if (op.name.value if op.name else None) == operation_name
        or (operation_name is None and len(operations) == 1)
    ]
    if len(chosen) != 1:
        return _collect(schema, [document], {})
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return _collect(schema, [chosen[0]], fragments)


def _collect(
    schema: GraphQLSchema,
    nodes: list[DocumentNode | OperationDefinitionNode | FragmentDefinitionNode],
    fragments: Mapping[str, FragmentDefinitionNode],
) -> set[str]:
    """Walk `nodes` and, transitively, the fragments they spread (each once)."""
    needed: set[str] = set()
    seen: set[str] = set()
    while nodes:
        type_info = TypeInfo(schema)
        collector = _Collector(type_info)
        visit(nodes.pop(), TypeInfoVisitor(type_info, collector))
        needed |= collector.needed
        for name in sorted(collector.spreads - seen):
            seen.add(name)
            if name in fragments:
                nodes.append(fragments[name])
    return needed
