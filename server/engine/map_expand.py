"""Starting a map step: resolve its list, write its items once, hand the step over to them.

Runs when the map step itself is claimed: on its first run, and again when a failed map step
is retried, which re-runs only the items that failed (the complete ones keep their results).
"""

from typing import Any

from server.db.models import StepItem, WorkflowStep
from server.db.rows import json_text
from server.domain.states import StepState
from server.domain.templates import StepTemplate
from server.domain.value_paths import BadPath, resolve
from server.engine.awaiting import hand_over
from server.engine.changes import StateChanges
from server.engine.map_slots import fill_slots, finish_if_done, item_message, items_lease
from server.engine.store import Claim, Outcome

MAX_MAP_ITEMS = 10_000
"""Items one map step may have; a longer list fails the step for good (`TOO_MANY_ITEMS`)."""

_S = StepState


def map_outcome(template: StepTemplate, claim: Claim) -> Outcome:
    """What claiming a map step leads to: hand it over to its items (`awaiting`, the list in
    `results`), complete it at once with `[]` (an empty list), or fail it for good."""
    assert template.map_over is not None
    try:
        items = resolve(template.map_over, claim.context, claim.parent_results)
    except BadPath as exc:
        return _permanent(str(exc), "BAD_PATH")
    if not isinstance(items, list):
        kind = type(items).__name__ if items is not None else "null"
        return _permanent(f"map_over '{template.map_over}' is a {kind}, not a list", "NOT_A_LIST")
    if len(items) > MAX_MAP_ITEMS:
        return _permanent(
            f"map_over '{template.map_over}' has {len(items)} items, over the limit of "
            f"{MAX_MAP_ITEMS}",
            "TOO_MANY_ITEMS",
        )
    if not items:
        return Outcome(results=[], encoded="[]")
    return Outcome(awaiting=items_lease(claim.step_id), results=items)


def _stored(item: Any) -> str:
    """An item as a new model instance takes it for a JSON field: the instance decodes JSON
    text once and bulk_create encodes only what is not already text, so a string item is
    encoded twice (it would otherwise reach the database as bare, invalid JSON)."""
    return json_text(json_text(item) if isinstance(item, str) else item)


def _permanent(message: str, code: str) -> Outcome:
    return Outcome(error=message, error_class=code, permanent=True)


async def expand(changes: StateChanges, claim: Claim, items: list[Any], limit: int) -> str:
    """Hand the step to its items (writing them on the first run, reopening the failed ones
    on a retry) and send the first `limit`: `awaiting`, `complete` or `discarded`."""
    async with changes.transaction() as tx:
        status = await tx.lock_task(claim.task.id)
        lease = items_lease(claim.step_id)
        if status is None or not await hand_over(tx, claim, lease):
            return "discarded"
        rows = StepItem.filter(step_id=claim.step_id).using_db(tx.conn)
        if not await rows.exists():
            await StepItem.bulk_create(
                [
                    StepItem(
                        step_id=claim.step_id,
                        idx=i,
                        status=_S.PENDING.value,
                        item=_stored(item),
                        updated_at=tx.now,
                    )
                    for i, item in enumerate(items)
                ],
                batch_size=1000,
                using_db=tx.conn,
            )
        else:  # a retry: the failed items run again, from their first attempt
            await rows.filter(status=_S.ERROR.value).update(
                status=_S.PENDING.value, attempts=0, next_attempt_at=None, dispatched_at=None,
                last_error=None, error_class=None, updated_at=tx.now,
            )  # fmt: skip
            await rows.filter(status=_S.PENDING.value).update(dispatched_at=None)
        step = (
            await WorkflowStep.filter(id=claim.step_id)
            .using_db(tx.conn)
            .only("id", "name", "status", "lease_owner")
            .first()
        )
        if step is not None and await finish_if_done(tx, claim.task, status, step):
            return "complete"
        ids = await fill_slots(tx, claim.step_id, limit)
        tx.dispatch_after_commit([item_message(i) for i in ids])
        return "awaiting"
