"""Rows with known timestamps for the analytics tests, written through the Tortoise models.

`History` builds tasks and their steps relative to a fixed `now`: each step runs right after
the previous one, and a finished task ends when its last run step ends, so every duration in
the expectations can be added up by hand.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import uuid4

from server.db.models import NamedTask, Namespace, Task, WorkflowStep


@dataclass
class Run:
    """One step of a seeded task: what its last attempt did."""

    name: str
    ms: int | None = None  # duration of the last attempt; None = never started
    status: str = "complete"
    attempts: int = 1
    retry_limit: int = 3
    error: str | None = None
    timeout: float | None = None
    next_attempt_at: datetime | None = None
    lease_expires_at: datetime | None = None
    dispatched_at: datetime | None = None


@dataclass
class History:
    """Collects tasks, then writes them in two bulk inserts."""

    now: datetime
    tasks: list[Task] = field(default_factory=list)
    steps: list[WorkflowStep] = field(default_factory=list)
    _handlers: dict[tuple[str, str, str], int] = field(default_factory=dict)

    async def handler(self, namespace: str, name: str, version: str) -> int:
        key = (namespace, name, version)
        if key not in self._handlers:
            ns, _ = await Namespace.get_or_create(name=namespace)
            named, _ = await NamedTask.get_or_create(
                namespace=ns, name=name, version=version, defaults={"definition": {}}
            )
            self._handlers[key] = named.id
        return self._handlers[key]

    async def task(
        self,
        handler: tuple[str, str, str],
        ago: timedelta,
        runs: list[Run],
        status: str = "complete",
    ) -> Task:
        """A task created `ago` before now whose steps ran one after another."""
        created = self.now - ago
        cursor = created
        task_id = uuid4()
        for position, run in enumerate(runs):
            started = completed = None
            if run.ms is not None:
                started = cursor
                completed = started + timedelta(milliseconds=run.ms)
                if run.status != "in_progress":
                    cursor = completed
                else:
                    completed = None
            self.steps.append(
                WorkflowStep(
                    task_id=task_id,
                    name=run.name,
                    position=position,
                    handler_class="x:Y",
                    status=run.status,
                    attempts=run.attempts,
                    retry_limit=run.retry_limit,
                    retryable=True,
                    timeout_seconds=run.timeout,
                    error_class=run.error,
                    last_error=f"{run.error} happened" if run.error else None,
                    next_attempt_at=run.next_attempt_at,
                    lease_expires_at=run.lease_expires_at,
                    dispatched_at=run.dispatched_at or started,
                    started_at=started,
                    completed_at=completed,
                    created_at=created,
                    updated_at=completed or started or created,
                )
            )
        finished = status in ("complete", "error", "cancelled")
        row = Task(
            id=task_id,
            named_task_id=await self.handler(*handler),
            namespace=handler[0],
            name=handler[1],
            version=handler[2],
            status=status,
            context={},
            tags=[],
            bypass_steps=[],
            identity_hash=task_id.hex,
            requested_at=created,
            created_at=created,
            updated_at=cursor,
            completed_at=cursor if finished else None,
        )
        self.tasks.append(row)
        return row

    async def save(self) -> None:
        await Task.bulk_create(self.tasks)
        await WorkflowStep.bulk_create(self.steps)
        self.tasks, self.steps = [], []
