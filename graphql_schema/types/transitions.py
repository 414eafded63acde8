from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from graphql_schema.types.enums import TransitionStatus, transition_status
from server.domain.views import TransitionEvent, TransitionView


@strawberry.type(name="Transition", description="One recorded state change of a task or step.")
class TransitionType:
    cursor: str = strawberry.field(description="Position in the history (resume point).")
    task_id: strawberry.ID = strawberry.field(description="The task concerned.")
    step_id: strawberry.ID | None = strawberry.field(description="The step, on step rows.")
    step_name: str | None = strawberry.field(description="The step's name, on step rows.")
    from_status: TransitionStatus | None = strawberry.field(description="State before.")
    to_status: TransitionStatus = strawberry.field(description="State after.")
    reason: str | None = strawberry.field(description="Why it changed.")
    metadata: JSON = strawberry.field(description="Extra facts recorded with the change.")
    occurred_at: datetime = strawberry.field(description="When it was committed.")

    @classmethod
    def from_view(cls, view: TransitionView) -> "TransitionType":
        return cls(
            cursor=str(view.id),
            task_id=strawberry.ID(str(view.task_id)),
            step_id=None if view.step_id is None else strawberry.ID(str(view.step_id)),
            step_name=view.step_name,
            from_status=transition_status(view.from_status),
            to_status=TransitionStatus(view.to_status),
            reason=view.reason,
            metadata=cast(JSON, view.metadata),
            occurred_at=view.occurred_at,
        )


@strawberry.type(
    name="TransitionEvent", description="A committed state change, delivered to subscribers."
)
class TransitionEventType:
    cursor: str = strawberry.field(
        description="Position in the history; pass it as `after` to resume after this event."
    )
    task_id: strawberry.ID = strawberry.field(description="The task concerned.")
    namespace: str = strawberry.field(description="The task's namespace.")
    step_id: strawberry.ID | None = strawberry.field(description="The step, for step events.")
    step_name: str | None = strawberry.field(description="The step's name, for step events.")
    from_status: TransitionStatus | None = strawberry.field(description="State before.")
    to_status: TransitionStatus = strawberry.field(description="State after.")
    reason: str | None = strawberry.field(description="Why it changed.")
    occurred_at: datetime = strawberry.field(description="When it was committed.")

    @classmethod
    def from_event(cls, event: TransitionEvent) -> "TransitionEventType":
        return cls(
            cursor=str(event.cursor),
            task_id=strawberry.ID(event.task_id),
            namespace=event.namespace,
            step_id=None if event.step_id is None else strawberry.ID(str(event.step_id)),
            step_name=event.step_name,
            from_status=transition_status(event.from_status),
            to_status=TransitionStatus(event.to_status),
            reason=event.reason,
            occurred_at=event.occurred_at,
        )


def as_event(view: TransitionView, namespace: str) -> TransitionEvent:
    """A history row in the shape of a live event (replays use it)."""
    return view.as_event(namespace)
