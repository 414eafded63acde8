"""Which permission (DESIGN §5.3) each GraphQL field needs: ONE table, read by the auth work.

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

TASK_INDEX = "tasker.task:index"
TASK_SHOW = "tasker.task:show"
TASK_CREATE = "tasker.task:create"
TASK_UPDATE = "tasker.task:update"
TASK_RETRY = "tasker.task:retry"
TASK_CANCEL = "tasker.task:cancel"
STEP_INDEX = "tasker.workflow_step:index"
STEP_SHOW = "tasker.workflow_step:show"
STEP_UPDATE = "tasker.workflow_step:update"
STEP_RETRY = "tasker.workflow_step:retry"
STEP_CANCEL = "tasker.workflow_step:cancel"
HANDLER_INDEX = "tasker.handler:index"
HANDLER_SHOW = "tasker.handler:show"
ANALYTICS_INDEX = "tasker.analytics:index"
HEALTH_INDEX = "tasker.health_status:index"

FIELD_PERMISSIONS: Final[Mapping[str, str]] = {
    # Queries
    "Query.namespaces": HANDLER_INDEX,
    "Query.namespace": HANDLER_INDEX,
    "Query.handler": HANDLER_SHOW,
    "Query.task": TASK_SHOW,
    "Query.tasks": TASK_INDEX,
    "Query.analytics": ANALYTICS_INDEX,
    "Query.health": HEALTH_INDEX,
    # Relations
    "Namespace.handlers": HANDLER_INDEX,
    "Handler.versions": HANDLER_SHOW,
    "Task.steps": STEP_INDEX,
    "Task.transitions": TASK_SHOW,
    "Task.dependencies": STEP_INDEX,
    "Step.blockedReason": STEP_SHOW,
    "Step.transitions": STEP_SHOW,
    "Analytics.performance": ANALYTICS_INDEX,
    "Analytics.bottlenecks": ANALYTICS_INDEX,
    # Mutations
    "Mutation.createTask": TASK_CREATE,
    "Mutation.updateTask": TASK_UPDATE,
    "Mutation.cancelTask": TASK_CANCEL,
    "Mutation.retryTask": TASK_RETRY,
    "Mutation.updateStep": STEP_UPDATE,
    "Mutation.cancelStep": STEP_CANCEL,
    "Mutation.retryStep": STEP_RETRY,
    "Mutation.resolveStep": STEP_UPDATE,
    # Subscriptions
    "Subscription.taskEvents": TASK_SHOW,
    "Subscription.namespaceEvents": TASK_INDEX,
}

KNOWN_PERMISSIONS: Final = frozenset(
    f"tasker.{resource}:{action}"
    for resource, actions in {
        "task": ("index", "show", "create", "update", "destroy", "retry", "cancel"),
        "workflow_step": ("index", "show", "update", "destroy", "retry", "cancel"),
        "handler": ("index", "show"),
        "task_diagram": ("index", "show"),
        "analytics": ("index",),
        "metrics": ("index",),
        "health_status": ("index",),
    }.items()
    for action in actions
)


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
