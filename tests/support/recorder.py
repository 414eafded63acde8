"""A step dispatcher for tests: keeps what the engine asks it to send, and sends nothing."""


class Recorder:
    """Stands in for the broker (`services.set_dispatcher`): `sent` holds the step ids in the
    order they were dispatched, whatever their delay or lane."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def dispatch(self, step_ids: list[int], delay_seconds: float = 0.0, priority: int = 2) -> None:
        self.sent.extend(step_ids)

    def backlog(self) -> int:
        return 0
