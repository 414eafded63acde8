"""Domain views -> the documented response shapes (`rest_compat.shapes`).

No I/O and no logic beyond renaming, plus the arithmetic the seed's shapes ask for
(`total_pages`). The hot task bodies come as plain JSON-ready values (`task_json`,
`task_list`), the rest as the shape models.
"""

import math
from collections.abc import Mapping
from typing import Any

from rest_compat import shapes
from server.domain.flow import ConcurrencySpec, RateLimitSpec
from server.domain.templates import HandlerTemplate, NamespaceInfo
from server.domain.views import (
    BlockedReason,
    ItemCounts,
    ItemPage,
    SignalView,
    StepView,
    TaskDependencies,
    TaskPage,
    TaskView,
    TransitionEvent,
)
from server.services.diagrams import TaskDiagram


def namespace_out(info: NamespaceInfo) -> shapes.NamespaceOut:
    return shapes.NamespaceOut(
        name=info.name,
        description=info.description,
        handler_count=len(info.handler_names),
        handlers=list(info.handler_names),
    )


def handler_summary(template: HandlerTemplate) -> shapes.HandlerSummary:
    return shapes.HandlerSummary(
        id=template.name,
        namespace=template.namespace,
        version=template.version,
        description=template.description,
        step_count=len(template.steps),
        step_names=[s.name for s in template.steps],
        paused=False,  # discovery fills it in: pauses are rows, templates are files
    )


def handler_detail(template: HandlerTemplate) -> shapes.HandlerDetail:
    graph = template.graph
    return shapes.HandlerDetail(
        id=template.name,
        namespace=template.namespace,
        version=template.version,
        description=template.description,
        step_templates=[
            shapes.StepTemplateOut(
                name=s.name,
                description=s.description,
                handler_class=s.handler_class,
                depends_on_step=s.depends_on_step,
                default_retryable=s.retryable,
                default_retry_limit=s.retry_limit,
                skippable=s.skippable,
                custom_events=list(s.custom_events),
                concurrency=_concurrency(s.concurrency),
                rate_limit=_rate_limit(s.rate_limit),
            )
            for s in template.steps
        ],
        dependency_graph=shapes.DependencyGraph(
            nodes=list(graph.nodes),
            edges=[shapes.GraphEdge(from_=p, to=c) for p, c in graph.edges],
            execution_order=list(graph.execution_order),
        ),
        paused=False,  # discovery fills it in: pauses are rows, templates are files
        concurrency=_concurrency(template.concurrency),
        priority=template.priority,
    )


def _concurrency(spec: ConcurrencySpec | None) -> shapes.ConcurrencyOut | None:
    if spec is None:
        return None
    return shapes.ConcurrencyOut(key=spec.key, limit=spec.limit, strategy=spec.strategy)


def _rate_limit(spec: RateLimitSpec | None) -> shapes.RateLimitOut | None:
    if spec is None:
        return None
    return shapes.RateLimitOut(
        key=spec.key, limit=spec.limit, period=spec.period_text, period_seconds=spec.period
    )


def task_json(task: TaskView) -> dict[str, Any]:
    """A task in the seed's shape (`shapes.TaskOut`) with every value ready for orjson.

    The hot reads (one task, a page of them) are encoded from this straight away
    (`operations.render_json`); the larger task bodies validate it into their models, which
    read the timestamps back."""
    return {
        "id": str(task.id),
        "name": task.name,
        "namespace": task.namespace,
        "version": task.version,
        "full_name": task.full_name,
        "status": task.status,
        "context": task.context,
        "created_at": shapes.iso_z(task.created_at),
        "updated_at": shapes.iso_z(task.updated_at),
        "run_at": shapes.iso_z(task.run_at) if task.run_at else None,
        "schedule_id": str(task.schedule_id) if task.schedule_id else None,
        "scheduled_for": shapes.iso_z(task.scheduled_for) if task.scheduled_for else None,
        "paused": task.paused,
        "priority": task.priority,
        "forked_from": str(task.forked_from) if task.forked_from else None,
        "parent_task_id": str(task.parent_task_id) if task.parent_task_id else None,
        "parent_step": task.parent_step,
    }


def task_record(task: TaskView) -> shapes.TaskRecordOut:
    return shapes.TaskRecordOut(
        **task_json(task),
        initiator=task.initiator,
        source_system=task.source_system,
        reason=task.reason,
        tags=list(task.tags),
        bypass_steps=list(task.bypass_steps),
        completed_at=task.completed_at,
    )


def task_list(page: TaskPage, *, current_page: int, per_page: int) -> dict[str, Any]:
    """`shapes.TaskList` as JSON-ready values."""
    return {
        "tasks": [task_json(t) for t in page.items],
        "pagination": {
            "current_page": current_page,
            "per_page": per_page,
            "total_pages": math.ceil(page.total_count / per_page),
            "total_count": page.total_count,
        },
    }


def task_with_dependencies(deps: TaskDependencies) -> shapes.TaskWithDependencies:
    task, steps, analysis = deps.task, deps.steps, deps.analysis
    return shapes.TaskWithDependencies(
        **task_json(task),
        steps=[
            shapes.TaskStepOut(
                name=s.name,
                status=s.status,
                results=s.results,
                attempts=s.attempts,
                started_at=s.started_at,
                completed_at=s.completed_at,
                skipped=s.skipped,
            )
            for s in steps
        ],
        dependencies=shapes.Dependencies(
            analysis=analysis.analysis,
            blocked_steps=[name for name, _ in analysis.blocked_steps],
            ready_steps=list(analysis.ready_steps),
            completed_steps=list(analysis.completed_steps),
            blocked_reasons={name: blocked_reason(r) for name, r in analysis.blocked_steps},
        ),
    )


def _reason_fields(reason: BlockedReason) -> dict[str, Any]:
    return {
        "code": reason.code,
        "message": reason.message,
        "waiting_on": list(reason.waiting_on),
        "until": reason.until,
        "key": reason.key,
        "holders": list(reason.holders),
        "signal": reason.signal,
    }


def blocked_reason(reason: BlockedReason) -> shapes.BlockedReasonOut:
    return shapes.BlockedReasonOut(**_reason_fields(reason))


def step_out(
    step: StepView,
    reasons: Mapping[str, BlockedReason],
    items: Mapping[int, ItemCounts] | None = None,
) -> shapes.StepOut:
    """A step; `reasons` are the task's blocked steps by name (from the dependency analysis),
    `items` the map steps' item progress by step id."""
    reason = reasons.get(step.name)
    counts = (items or {}).get(step.id)
    return shapes.StepOut(
        id=step.id,
        task_id=str(step.task_id),
        name=step.name,
        status=step.status,
        attempts=step.attempts,
        retry_limit=step.retry_limit,
        retryable=step.retryable,
        skippable=step.skippable,
        inputs=step.inputs,
        results=step.results,
        last_error=step.last_error,
        error_class=step.error_class,
        next_attempt_at=step.next_attempt_at,
        started_at=step.started_at,
        completed_at=step.completed_at,
        created_at=step.created_at,
        updated_at=step.updated_at,
        parents=list(step.parents),
        children=list(step.children),
        blocked_reason=blocked_reason(reason) if reason else None,
        skipped=step.skipped,
        items=shapes.ItemCountsOut(**counts._asdict()) if counts else None,
    )


def item_page_out(page: ItemPage) -> shapes.ItemPageOut:
    """A page of a map step's items."""
    return shapes.ItemPageOut(
        step_id=page.step_id,
        counts=shapes.ItemCountsOut(**page.counts._asdict()),
        items=[
            shapes.ItemOut(
                index=i.index,
                status=i.status,
                attempts=i.attempts,
                item=i.item,
                results=i.results,
                last_error=i.last_error,
                error_class=i.error_class,
                next_attempt_at=i.next_attempt_at,
                started_at=i.started_at,
                completed_at=i.completed_at,
            )
            for i in page.items
        ],
        next_after=page.next_after,
    )


def diagram_out(diagram: TaskDiagram) -> shapes.DiagramOut:
    return shapes.DiagramOut(
        nodes=[
            shapes.DiagramNodeOut(
                id=n.id,
                label=n.label,
                shape=n.shape,
                style=n.style,
                url=n.url,
                attributes=shapes.NodeAttributes(status=n.status, duration_ms=n.duration_ms),
            )
            for n in diagram.nodes
        ],
        edges=[
            shapes.DiagramEdgeOut(
                source_id=e.source_id,
                target_id=e.target_id,
                label=e.label,
                type=e.type,
                direction=e.direction,
                attributes={},
            )
            for e in diagram.edges
        ],
        direction=diagram.direction,
        title=diagram.title,
        attributes=shapes.DiagramAttributes(task_id=str(diagram.task_id), status=diagram.status),
    )


def event_out(event: TransitionEvent) -> shapes.EventOut:
    return shapes.EventOut(
        cursor=event.cursor,
        task_id=event.task_id,
        namespace=event.namespace,
        step_id=event.step_id,
        step_name=event.step_name,
        from_status=event.from_status,
        to_status=event.to_status,
        reason=event.reason,
        occurred_at=event.occurred_at,
    )


def signal_out(signal: SignalView) -> shapes.SignalOut:
    """A delivered signal."""
    return shapes.SignalOut(
        task_id=str(signal.task_id),
        name=signal.name,
        signal_id=signal.signal_id,
        payload=signal.payload,
        received_at=signal.received_at,
        consumed_by=signal.consumed_by,
    )
