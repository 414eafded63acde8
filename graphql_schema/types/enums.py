from enum import StrEnum
from typing import TypeAlias

import strawberry

from server.domain.states import StepState, TaskState

# The domain enums themselves are the GraphQL enums (strawberry registers them in place).
strawberry.enum(TaskState, name="TaskStatus", description="Lifecycle state of a task.")
strawberry.enum(StepState, name="StepStatus", description="Lifecycle state of a workflow step.")
TaskStatus: TypeAlias = TaskState
StepStatus: TypeAlias = StepState


@strawberry.enum(
    name="TransitionStatus",
    description=(
        "A state named in the transition history: a task's state on task rows, a step's on "
        "step rows (both lifecycles share these values)."
    ),
)
class TransitionStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"
    RESOLVED_MANUALLY = "resolved_manually"


def transition_status(value: str | None) -> TransitionStatus | None:
    return None if value is None else TransitionStatus(value)
