"""Two small reads for the web console: tasks by the first characters of their id, and tasks
completed and failed per hour (closed hours from the analytics rollups, the rest live).

A module of its own so that the GraphQL adapter reaches the tables through the core, as the
layering requires, without touching the services others maintain.
"""

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from server.db import analytics_rollup as rollup
from server.db.models import Task
from server.db.sql import Query, as_datetime, reading, states
from server.domain.analytics_rollup import slot_start, split
from server.domain.states import TaskState

UUID_ZERO = "00000000-0000-0000-0000-000000000000"
UUID_LAST = "ffffffff-ffff-ffff-ffff-ffffffffffff"
PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")
MAX_HOURS = 168


def id_range(prefix: str) -> tuple[str, str] | None:
    """The first and last UUIDs starting with `prefix` (None when no UUID can), so that the
    search is a range scan of the primary key on both databases."""
    prefix = prefix.strip().lower()
    if not PREFIX.match(prefix):
        return None
    if any((c == "-") != (UUID_ZERO[i] == "-") for i, c in enumerate(prefix)):
        return None
    return prefix + UUID_ZERO[len(prefix) :], prefix + UUID_LAST[len(prefix) :]


async def task_ids_by_prefix(prefix: str, first: int = 10) -> list[str]:
    """Ids of the tasks whose id starts with `prefix`, newest first (at most `first`)."""
    bounds = id_range(prefix)
    if bounds is None:
        return []
    ids = (
        await Task.filter(id__gte=bounds[0], id__lte=bounds[1])
        .order_by("-created_at")
        .limit(max(1, min(first, 100)))
        .values_list("id", flat=True)
    )
    return [str(i) for i in ids]


def _hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def hourly_outcomes(
    hours: int, now: datetime | None = None
) -> list[tuple[datetime, int, int]]:
    """(hour, completed, failed) for the last `hours` hours, the current one included, oldest
    first; tasks count in the hour they finished, as in the rollups."""
    hours = max(1, min(hours, MAX_HOURS))
    now = now or datetime.now(UTC)
    first = _hour(now) - timedelta(hours=hours - 1)
    window = split(first, now)
    if window.rolled:
        await rollup.roll(window, now)
    counts: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    async with reading() as conn:
        q = Query(conn)
        rolled = await q.rows(
            "SELECT span, slot, SUM(completed) AS c, SUM(failed) AS f "
            f"FROM tasker_analytics_task_slots WHERE {rollup.rolled_sql(q, window.blocks)} "
            "GROUP BY span, slot"
        )
        for row in rolled:
            hour = _hour(slot_start(int(row["slot"]), int(row["span"])))
            counts[hour][0] += int(row["c"] or 0)
            counts[hour][1] += int(row["f"] or 0)
        for since, until in window.live:
            q = Query(conn)
            upper = "" if until is None else f" AND completed_at < {q(until)}"
            live = await q.rows(
                "SELECT status, completed_at FROM tasker_tasks "
                f"WHERE status IN {states(TaskState.COMPLETE, TaskState.ERROR)} "
                f"AND completed_at >= {q(since)}{upper}"
            )
            for row in live:
                at = as_datetime(row["completed_at"])
                if at is not None:
                    counts[_hour(at)][0 if row["status"] == TaskState.COMPLETE else 1] += 1
    slots = (first + timedelta(hours=i) for i in range(hours))
    return [(h, counts[h][0], counts[h][1]) for h in slots]
