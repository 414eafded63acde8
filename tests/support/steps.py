"""Step handlers used by the workflow tests (loaded by test processes and real workers)."""

import asyncio
import os
import time
from typing import Any

from server.handlers import PermanentError, RetryableError, StepContext, StepHandler


class Work(StepHandler):
    """Sleeps `context.sleep` seconds (default 0.05), honours the failure knobs, reports."""

    async def process(self, step: StepContext) -> Any:
        ctx = step.context or {}
        if ctx.get("crash_once") == step.name and step.attempt == 1:
            # Simulates a worker dying mid-step: the test kills this process while it sleeps.
            marker = ctx.get("crash_marker")
            if marker:
                with open(marker, "w") as fh:
                    fh.write(str(os.getpid()))
            await asyncio.sleep(60)
        fails = (ctx.get("fail") or {}).get(step.name, 0)
        if step.attempt <= fails:
            raise RetryableError(
                f"{step.name} failed on attempt {step.attempt}", retry_after=ctx.get("retry_after")
            )
        if ctx.get("permanent") == step.name:
            raise PermanentError(f"{step.name} cannot succeed", code="CARD_DECLINED")
        started = time.time()
        await asyncio.sleep((ctx.get("sleeps") or {}).get(step.name, ctx.get("sleep", 0.05)))
        return {
            "step": step.name,
            "attempt": step.attempt,
            "started": started,
            "finished": time.time(),
            "parents": sorted(step.parent_results),
        }


class SyncWork(StepHandler):
    """A synchronous handler (runs in a thread)."""

    def process(self, step: StepContext) -> Any:
        time.sleep((step.context or {}).get("sleep", 0.01))
        return {"step": step.name, "sync": True, "parents": sorted(step.parent_results)}
