"""No-op step handlers for the engine benchmark."""

from typing import Any

from server.handlers import StepContext, StepHandler


class Noop(StepHandler):
    """Returns immediately: the benchmark measures the engine, not the work."""

    async def process(self, step: StepContext) -> Any:
        return {"ok": True}
