"""Step handlers for the dynamic-workflow tests: they return what the context says and count
their calls (the embedded workers run in the test process)."""

from collections import Counter
from typing import Any

from server.handlers import StepContext, StepHandler

CALLS: Counter[tuple[str, str]] = Counter()
"""(task id, step name) -> how many times the handler was called."""


class Echo(StepHandler):
    """Returns `context.returns.<step>` (default `{"step": <name>}`) and counts the call."""

    async def process(self, step: StepContext) -> Any:
        CALLS[(str(step.task_id), step.name)] += 1
        ctx = step.context or {}
        if ctx.get("fail") == step.name:
            from server.handlers import PermanentError

            raise PermanentError(f"{step.name} told to fail", code="TOLD_TO")
        return (ctx.get("returns") or {}).get(step.name, {"step": step.name})
