"""The GraphQL type of a delivered signal."""

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from server.domain.views import SignalView


@strawberry.type(name="Signal", description="A signal delivered to a task's wait_for step.")
class SignalType:
    task_id: strawberry.ID = strawberry.field(description="The task it was sent to.")
    name: str = strawberry.field(description="The signal's name.")
    signal_id: str = strawberry.field(
        description="The sender's id for this delivery (generated when none was given)."
    )
    payload: JSON | None = strawberry.field(description="Becomes the waiting step's results.")
    received_at: datetime = strawberry.field(description="When it was first delivered.")
    consumed_by: str | None = strawberry.field(
        description="The step it completed; null while it is kept for a step not reached yet."
    )
    repeated: bool = strawberry.field(
        description="True when this signalId had been delivered before: this is that delivery."
    )

    @classmethod
    def from_view(cls, view: SignalView) -> "SignalType":
        return cls(
            task_id=strawberry.ID(str(view.task_id)),
            name=view.name,
            signal_id=view.signal_id,
            payload=view.payload,
            received_at=view.received_at,
            consumed_by=view.consumed_by,
            repeated=not view.created,
        )
