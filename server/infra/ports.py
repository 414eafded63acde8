"""What the core needs from the outside, as protocols; adapters implement them."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from server.domain.flow import DEFAULT_PRIORITY
from server.domain.views import TransitionEvent


class StepDispatcher(Protocol):
    """Sends a nudge ("step N may be runnable") to the workers. Ids only; losing one is safe."""

    def dispatch(
        self,
        step_ids: Sequence[int],
        delay_seconds: float = 0.0,
        priority: int = DEFAULT_PRIORITY,
        limited: bool = False,
    ) -> None:
        """Enqueue one message per step id, after `delay_seconds`, in the lane of `priority`
        (1 low .. 3 high): a worker takes a higher lane's messages before a lower one's.
        `limited`: the steps have limits, and the messages say so (the worker claims them
        with the limited statement first)."""
        ...

    def backlog(self) -> int:
        """Messages waiting in the queue now (0 when unknown)."""
        ...


class EventPublisher(Protocol):
    """Carries committed transitions to subscribers (in-process, or Redis pub/sub)."""

    def publish(self, events: Sequence[TransitionEvent]) -> None:
        """Hand events to subscribers; must not raise."""
        ...


class Clock(Protocol):
    """The current time (tests may pin it)."""

    def now(self) -> datetime:
        """An aware UTC datetime."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """An aware UTC datetime."""
        return datetime.now(UTC)


class NullDispatcher:
    """Drops nudges; the sweeper will find the steps (used by tools that only read)."""

    def dispatch(
        self,
        step_ids: Sequence[int],
        delay_seconds: float = 0.0,
        priority: int = DEFAULT_PRIORITY,
        limited: bool = False,
    ) -> None:
        """Do nothing."""

    def backlog(self) -> int:
        """Nothing is ever queued."""
        return 0
