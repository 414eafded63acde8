"""Before a sweep: one statement of EXISTS probes saying which parts of it could act on
anything, so that an idle process pays one cheap query per sweep instead of about ten.

Each probe covers what its parts act on, and is wider rather than narrower (when in doubt,
sweep); each is answered by the first entry of an index on `status` (or of a table that is
empty when idle):

- `running_steps`, a step in progress in any task: the only steps that the dead workers' and
  the expired leases' reclaim take back; the map items' re-send only looks at items of such a
  step, and the settling of idle map steps at such steps (awaiting their items);
- `running_items`, a map item in progress whatever its step's state: the map items' reap;
- `active_tasks`, a task pending or in progress: the idle re-dispatch acts on steps of
  claimable tasks (the same states), and the stuck tasks' re-examination on active tasks;
- `limit_slots`, any limit slot row, held, waiting or offered: `sweep_limits` acts only on
  the keys that have some.

A sweep the probe skips acts on nothing it would have: a step, item or task that comes into
being after the probe is seen by the next sweep, as it would have been by a full one.
"""

from dataclasses import dataclass

from server.db.sql import Query, connection, state, states
from server.domain.states import ACTIVE_TASK_STATES, StepState


@dataclass(frozen=True, slots=True)
class SweepWork:
    """Which parts of a sweep have something to look at."""

    running_steps: bool = True
    running_items: bool = True
    active_tasks: bool = True
    limit_slots: bool = True

    @property
    def any(self) -> bool:
        """False when the whole sweep would act on nothing."""
        return self.running_steps or self.running_items or self.active_tasks or self.limit_slots


def _exists(table: str, where: str = "") -> str:
    return f"EXISTS (SELECT 1 FROM {table}{f' WHERE {where}' if where else ''})"


PROBE = (
    "SELECT "
    f"{_exists('tasker_workflow_steps', f'status = {state(StepState.IN_PROGRESS)}')} AS steps, "
    f"{_exists('tasker_step_items', f'status = {state(StepState.IN_PROGRESS)}')} AS items, "
    f"{_exists('tasker_tasks', f'status IN {states(*sorted(ACTIVE_TASK_STATES))}')} AS tasks, "
    f"{_exists('tasker_limit_slots')} AS slots"
)


async def probe() -> SweepWork:
    """What the next sweep could act on, in one statement."""
    row = await Query(connection()).one(PROBE)
    return SweepWork(
        running_steps=bool(row["steps"]),
        running_items=bool(row["items"]),
        active_tasks=bool(row["tasks"]),
        limit_slots=bool(row["slots"]),
    )
