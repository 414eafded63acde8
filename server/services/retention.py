"""Retention: delete finished tasks older than a cutoff, in small batches.

Each batch is its own short statement (select ids, delete those), so no lock is held for long
and workers keep running. History, steps and edges go with their task (ON DELETE CASCADE).
"""

from datetime import datetime, timedelta

from server.db.models import ScheduleFire, Task
from server.domain.states import TERMINAL_TASK_STATES, TaskState
from server.infra.ports import Clock


async def prune_finished(
    clock: Clock,
    *,
    older_than: timedelta,
    batch: int = 1000,
    max_batches: int | None = None,
    include_errors: bool = False,
) -> int:
    """Delete tasks that finished before now - `older_than`; returns how many were deleted.

    A task in `error` may still be retried, so it is kept unless `include_errors`.
    """
    cutoff: datetime = clock.now() - older_than
    finished = [s.value for s in TERMINAL_TASK_STATES]
    if include_errors:
        finished.append(TaskState.ERROR.value)
    deleted = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        ids = await (
            Task.filter(status__in=finished, completed_at__lt=cutoff)
            .limit(batch)
            .values_list("id", flat=True)
        )
        if not ids:
            break
        # Count the ids, not the driver's row count: SQLite's includes the cascaded rows.
        await Task.filter(id__in=list(ids)).delete()
        # Their schedules' fire rows too: those ticks lie far behind every `next_fire_at`, so
        # nothing can fire them again.
        await ScheduleFire.filter(task_id__in=list(ids)).delete()
        deleted += len(ids)
        batches += 1
    return deleted
