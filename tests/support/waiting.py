"""Polling helpers: wait for a task to reach a state, with a deadline."""

import asyncio
import time
from uuid import UUID

from server.container import Services
from server.domain.states import TaskState
from server.domain.views import TaskView

TERMINAL = {TaskState.COMPLETE, TaskState.ERROR, TaskState.CANCELLED}


async def wait_for_task(
    services: Services, task_id: UUID, states: set[TaskState] | None = None, timeout: float = 20
) -> TaskView:
    """Poll until the task is in one of `states` (default: terminal); fail on timeout."""
    wanted = states or TERMINAL
    deadline = time.monotonic() + timeout
    while True:
        task = await services.tasks.get_task(task_id)
        if task.status in wanted:
            return task
        if time.monotonic() > deadline:
            steps = await services.steps.list_steps(task_id)
            detail = {s.name: (s.status.value, s.attempts, s.last_error) for s in steps}
            raise AssertionError(f"task {task_id} still {task.status.value}: {detail}")
        await asyncio.sleep(0.05)
