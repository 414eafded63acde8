from typing import Any

import strawberry
from strawberry.scalars import JSON

from graphql_schema.context import Info
from graphql_schema.types.limits import ConcurrencyLimitType, RateLimitType
from server.domain.dag import StepGraph
from server.domain.templates import HandlerTemplate, NamespaceInfo, StepTemplate


@strawberry.type(name="StepTemplate", description="One step of a handler, as declared.")
class StepTemplateType:
    name: str = strawberry.field(description="Step name, unique within the handler.")
    handler_class: str = strawberry.field(description="Python class that runs the step.")
    description: str | None = strawberry.field(description="What the step does.")
    depends_on: list[str] = strawberry.field(description="Names of the steps it waits for.")
    retryable: bool = strawberry.field(description="Whether a failure is retried.")
    retry_limit: int = strawberry.field(description="Most attempts a retryable step gets.")
    skippable: bool = strawberry.field(description="Whether `bypassSteps` may skip it.")
    custom_events: list[str] = strawberry.field(description="Custom events the step publishes.")
    timeout_seconds: float | None = strawberry.field(description="Per-attempt time limit.")
    concurrency: ConcurrencyLimitType | None = strawberry.field(
        default=None, description="At most this many steps of it running per key."
    )
    rate_limit: RateLimitType | None = strawberry.field(
        default=None, description="At most this many starts per key per window."
    )

    @classmethod
    def from_template(cls, step: StepTemplate) -> "StepTemplateType":
        return cls(
            name=step.name,
            handler_class=step.handler_class,
            description=step.description,
            depends_on=list(step.depends_on),
            retryable=step.retryable,
            retry_limit=step.retry_limit,
            skippable=step.skippable,
            custom_events=list(step.custom_events),
            timeout_seconds=step.timeout_seconds,
            concurrency=ConcurrencyLimitType.of(step.concurrency, handler=False),
            rate_limit=RateLimitType.of(step.rate_limit),
        )


@strawberry.type(name="DependencyEdge", description="A parent → child dependency.")
class DependencyEdgeType:
    from_: str = strawberry.field(name="from", description="The parent step.")
    to: str = strawberry.field(description="The child step that waits for it.")


@strawberry.type(name="DependencyGraph", description="The handler's steps as a DAG.")
class DependencyGraphType:
    nodes: list[str] = strawberry.field(description="Every step name.")
    edges: list[DependencyEdgeType] = strawberry.field(description="Every dependency.")
    execution_order: list[str] = strawberry.field(
        description="A topological order: each step after all its parents."
    )

    @classmethod
    def from_graph(cls, graph: StepGraph) -> "DependencyGraphType":
        return cls(
            nodes=list(graph.nodes),
            edges=[DependencyEdgeType(from_=p, to=c) for p, c in graph.edges],
            execution_order=list(graph.execution_order),
        )


def resolve_versions(root: "HandlerType", info: Info) -> list[str]:
    return info.context.services.registry.versions(root.namespace, root.name)


async def resolve_paused(root: "HandlerType", info: Info) -> bool:
    pausing = info.context.services.pausing
    return (await pausing.handler_pause(root.namespace, root.name, root.version)).paused


@strawberry.type(name="HandlerPause", description="A handler's pauses after a pause or resume.")
class HandlerPauseType:
    namespace: str = strawberry.field(description="Namespace of the handler.")
    name: str = strawberry.field(description="Handler name.")
    version: str | None = strawberry.field(description="The version acted on (null: all).")
    paused: bool = strawberry.field(
        description="Whether tasks of it (of that version) now start no step."
    )
    paused_versions: list[str] = strawberry.field(
        description="Every pause of the handler in force: versions, '' for all of them."
    )


@strawberry.type(name="Handler", description="A named, versioned workflow template.")
class HandlerType:
    name: str = strawberry.field(description="Handler name, unique within its namespace.")
    namespace: str = strawberry.field(description="Namespace the handler belongs to.")
    version: str = strawberry.field(description="Semantic version of this definition.")
    full_name: str = strawberry.field(description="`namespace.name@version`.")
    description: str | None = strawberry.field(description="What the workflow does.")
    context_schema: JSON | None = strawberry.field(
        description="JSON Schema that a task's context must satisfy, if any."
    )
    step_templates: list[StepTemplateType] = strawberry.field(
        description="The steps, in declaration order."
    )
    dependency_graph: DependencyGraphType = strawberry.field(
        description="Dependencies between the steps."
    )
    versions: list[str] = strawberry.field(
        resolver=resolve_versions,
        description="Every loaded version of this handler, newest first (semver).",
    )
    paused: bool = strawberry.field(
        resolver=resolve_paused,
        description="Paused (pauseHandler): no step of its tasks starts until resumed.",
    )
    concurrency: ConcurrencyLimitType | None = strawberry.field(
        default=None, description="At most this many of its tasks in progress per key."
    )
    priority: int = strawberry.field(
        default=2, description="Its tasks' default priority, 1 (low) .. 3 (high)."
    )

    @classmethod
    def from_template(cls, template: HandlerTemplate) -> "HandlerType":
        schema: Any = template.context_schema
        return cls(
            name=template.name,
            namespace=template.namespace,
            version=template.version,
            full_name=template.full_name,
            description=template.description,
            context_schema=schema,
            concurrency=ConcurrencyLimitType.of(template.concurrency, handler=True),
            priority=template.priority,
            step_templates=[StepTemplateType.from_template(s) for s in template.steps],
            dependency_graph=DependencyGraphType.from_graph(template.graph),
        )


def resolve_handlers(root: "NamespaceType", info: Info) -> list[HandlerType]:
    templates = info.context.services.registry.handlers(root.name)
    return [HandlerType.from_template(t) for t in templates]


@strawberry.type(name="Namespace", description="A group of handlers.")
class NamespaceType:
    name: str = strawberry.field(description="Namespace name.")
    description: str | None = strawberry.field(description="What the namespace is for.")
    handler_count: int = strawberry.field(description="How many handler names it holds.")
    handlers: list[HandlerType] = strawberry.field(
        resolver=resolve_handlers,
        description="The latest version of each handler in the namespace.",
    )

    @classmethod
    def from_info(cls, namespace: NamespaceInfo) -> "NamespaceType":
        return cls(
            name=namespace.name,
            description=namespace.description,
            handler_count=len(namespace.handler_names),
        )
