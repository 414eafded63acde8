"""A map item handler that appends each of its calls to a file, from any worker process."""

import asyncio
import os
from typing import Any

from server.handlers.base import StepContext, StepHandler


class LoggedItem(StepHandler):
    """Writes `<index> <attempt> <pid>` to the context's `log` file, then takes `pause`
    seconds and returns ten times its item."""

    async def process(self, step: StepContext) -> Any:
        context = step.context or {}
        line = f"{step.index} {step.attempt} {os.getpid()}\n".encode()
        # One write of one short line with O_APPEND: lines of concurrent writers never mix.
        fd = os.open(context["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        await asyncio.sleep(float(context.get("pause", 0.05)))
        return step.item * 10
