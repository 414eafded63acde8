"""Step handlers for the dynamic-workflow tests (child tasks, map)."""

import threading
from typing import Any

from server.domain.errors import PermanentError
from server.handlers.base import StepContext, StepHandler

FAILING: set[str] = set()
"""Context `key`s whose `FailWhileListed` step fails for good (tests add and remove them)."""

CALLS: dict[str, int] = {}
_lock = threading.Lock()


def count(name: str) -> None:
    with _lock:
        CALLS[name] = CALLS.get(name, 0) + 1


class Echo(StepHandler):
    """Returns the task's context and its parents' results."""

    async def process(self, step: StepContext) -> Any:
        return {
            "context": step.context,
            "parents": dict(step.parent_results),
            **(step.context or {}),
        }


class FailWhileListed(StepHandler):
    async def process(self, step: StepContext) -> Any:
        key = (step.context or {}).get("key")
        if key in FAILING:
            raise PermanentError(f"{key} is listed to fail")
        return {"ok": key}


class StartsLeafPair(StepHandler):
    """Starts a leaf_pair child; counts its runs (a re-run must not make a second child)."""

    async def process(self, step: StepContext) -> Any:
        count(f"spawn:{step.task_id}")
        step.start_task("dynamic", "leaf_pair", {"key": "py", "n": 1})


class DoubleItem(StepHandler):
    """Doubles its item; items divisible by 7 fail on their first two attempts."""

    async def process(self, step: StepContext) -> Any:
        assert step.index is not None
        if step.item % 7 == 0 and step.attempt < 3:
            raise RuntimeError(f"item {step.index} flaky attempt {step.attempt}")
        return step.item * 2


class Gauge:
    """How many items run at once, and the most ever seen."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


IN_FLIGHT = Gauge()


class SlowDouble(StepHandler):
    """DoubleItem, holding its slot a little while (to show the max_parallel cap)."""

    async def process(self, step: StepContext) -> Any:
        import asyncio

        IN_FLIGHT.enter()
        try:
            # Longer than an item's claim and record (each a transaction with its history row,
            # serialised on SQLite): a shorter hold let one item finish before the next
            # started, and the run never showed two at once.
            await asyncio.sleep(0.02)
            if step.item == "boom":
                raise PermanentError("boom")
            if isinstance(step.item, int) and step.item % 7 == 0 and step.attempt < 3:
                raise RuntimeError(f"item {step.index} flaky attempt {step.attempt}")
            return step.item * 2 if isinstance(step.item, int) else step.item
        finally:
            IN_FLIGHT.leave()
