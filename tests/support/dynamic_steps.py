"""Step handlers for the dynamic-workflow tests: they return what the context says and count
their calls (the embedded workers run in the test process)."""

from collections import Counter
from typing import Any

from server.container import Services
from server.domain.views import CreateTask
from server.handlers import StepContext, StepHandler
from tests.support.waiting import wait_for_task

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


async def finished(engine: Services, context: dict[str, object]) -> str:
    """The id of a `dynamic/chain` task with this context, once it has finished."""
    view, _ = await engine.tasks.create_task(CreateTask("dynamic", "chain", context))
    return str((await wait_for_task(engine, view.id)).id)
