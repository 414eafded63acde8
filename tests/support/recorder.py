"""Step dispatchers for tests: they keep what the engine asks them to send, and send nothing."""

from typing import Any, TypeVar

from server.container import Services
from server.testing import VirtualClock


class Recorder:
    """Stands in for the broker (`services.set_dispatcher`): `sent` holds the step ids in the
    order they were dispatched, whatever their delay or lane."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.limited: list[int] = []
        """The ids sent saying their step has limits."""

    def dispatch(
        self,
        step_ids: list[int],
        delay_seconds: float = 0.0,
        priority: int = 2,
        limited: bool = False,
    ) -> None:
        self.sent.extend(step_ids)
        if limited:
            self.limited.extend(step_ids)

    def backlog(self) -> int:
        return 0


class TimedRecorder:
    """A `Recorder` whose `sent` holds (step id, delay in seconds) pairs."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, float]] = []

    def dispatch(
        self, step_ids: Any, delay_seconds: float = 0.0, priority: int = 2, limited: bool = False
    ) -> None:
        self.sent.extend((i, delay_seconds) for i in step_ids)

    def backlog(self) -> int:
        return 0


R = TypeVar("R", Recorder, TimedRecorder)


def recording(services: Services, recorder: R) -> tuple[VirtualClock, R]:
    """The engine on a virtual clock, dispatching to `recorder`."""
    clock = VirtualClock()
    services.changes.clock = clock
    services.set_dispatcher(recorder)
    return clock, recorder
