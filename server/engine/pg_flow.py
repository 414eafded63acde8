"""The PostgreSQL store's path for steps with limits: one statement to claim, one to complete
(`server.engine.pg_flow_sql`), with the portable claim (`limits.admit`) deciding whatever that
statement leaves: a refusal (recording the wait or the rate window), a step that has waited.
A key seen for the first time gets its row and the statement runs again. Failures, retries
and reaped leases go through the portable store's transaction, which frees slots in
`limits.release`.
"""

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import Tortoise

from server.domain.flow import DEFAULT_PRIORITY
from server.domain.readiness import CLAIMABLE_TASK_STATES, RETRYING
from server.domain.states import ACTIVE_TASK_STATES, StepState, TaskState
from server.engine import limits, pg_complete
from server.engine.changes import Effects
from server.engine.limit_keys import (
    HELD,
    KEEP_STARTS_SECONDS,
    OFFERED,
    WAITING,
    create_keys,
    lock_keys,
    split_name,
)
from server.engine.pg_claims import claim_from_row
from server.engine.pg_complete import (
    COMPLETE_MOVES,
    completion_effects,
    next_to_run,
    write_many,
)
from server.engine.pg_flow_sql import CLAIM_LIMITED, COMPLETE_LIMITED, COMPLETE_MANY_LIMITED
from server.engine.pg_sql import Move, Statement
from server.engine.store import Claim, ClaimRequest, Recorded

if TYPE_CHECKING:
    from server.engine.pg_store import PgStore

_S, _T = StepState, TaskState

CLAIM_STATEMENT = Statement(
    CLAIM_LIMITED,
    args=(
        "step_id", "now", "lease", "default_timeout", "grace", "epoch", "held", "offered",
        "task_kind", "rate_kind", "keep", "waiting", "parked_until",
    ),
    moves={
        "retry": Move("step", RETRYING, _S.PENDING),
        "claim": Move("step", _S.PENDING, _S.IN_PROGRESS),
        "start": Move("task", _T.PENDING, _T.IN_PROGRESS),
    },
    states={
        "claimable_tasks": sorted(CLAIMABLE_TASK_STATES),
        "active_tasks": sorted(ACTIVE_TASK_STATES),
        "running": _S.IN_PROGRESS,
    },
)  # fmt: skip

SLOT_ARGS = ("held", "waiting", "offered", "task_scopes")
"""What a completion's freeing of slots takes after the completion's own arguments."""
_COMPLETE_STATES: dict[str, StrEnum | list[TaskState]] = {
    "ready_state": _S.PENDING,
    "active_tasks": sorted(ACTIVE_TASK_STATES),
}

COMPLETE_STATEMENT = Statement(
    COMPLETE_LIMITED,
    args=("step_id", "lease", "results", "now", "metadata", *SLOT_ARGS),
    moves=COMPLETE_MOVES,
    states=_COMPLETE_STATES,
)

COMPLETE_MANY_STATEMENT = Statement(
    COMPLETE_MANY_LIMITED,
    args=(*pg_complete.COMPLETE_MANY_STATEMENT.args, *SLOT_ARGS),
    moves=COMPLETE_MOVES,
    states=_COMPLETE_STATES,
)

_KINDS = {"task_kind": limits.TASK_LIMIT, "rate_kind": limits.RATE_LIMIT}


def _sql(statement: Statement) -> str:
    """The statement with the limit kinds written in as literals (they are not statuses)."""
    sql = statement.sql
    for name, value in _KINDS.items():
        sql = sql.replace(f"${name}", f"'{value}'")
    return sql


CLAIM_STATEMENT.sql, _COMPLETE_SQL = _sql(CLAIM_STATEMENT), _sql(COMPLETE_STATEMENT)


async def claim_limited(store: "PgStore", req: ClaimRequest) -> tuple[Claim | None, bool]:
    """Claim a step with limits: in one statement when they have room (or record its first
    wait for a full key), else through the portable claim (which refuses or admits it under
    the key locks). Also says whether the step has limits: the unlimited CLAIM is for one
    that has none."""
    conn = Tortoise.get_connection("default")
    for _ in range(2):
        now = store.changes.clock.now()
        rows = await conn.execute_query_dict(
            CLAIM_STATEMENT.sql,
            CLAIM_STATEMENT.values(
                req.step_id, now, req.lease_owner, req.default_timeout, req.lease_grace,
                now.timestamp(), HELD, OFFERED, limits.TASK_LIMIT, limits.RATE_LIMIT,
                KEEP_STARTS_SECONDS, WAITING, now + limits.PARKED,
            ),
        )  # fmt: skip
        r = rows[0] if rows else None
        if r is None or r["id"] is not None or not r["missing"]:
            break
        # Keys seen for the first time (a new customer of a per-customer limit): their rows
        # made, the same statement decides again.
        await create_keys(conn, r["missing"])
    if r is None:
        return None, False
    limited = bool(r["limited"])
    if r["id"] is None:
        undecided = limited and not r["waited"] and r["candidate"]
        return (await store._claim(req) if undecided else None), limited
    start = CLAIM_STATEMENT.moves["start"]
    return claim_from_row(store.changes, r, req, start, now, limited=True), True


async def complete_limited(store: "PgStore", claim: Claim, encoded: str) -> Recorded:
    """Complete a step with limits, free its slots and hand them to the keys' best waiting
    steps, in one statement; `discarded` if the lease was lost."""
    now = store.changes.clock.now()
    rows = await Tortoise.get_connection("default").execute_query_dict(
        COMPLETE_STATEMENT.sql,
        COMPLETE_STATEMENT.values(
            claim.step_id, claim.lease_owner, encoded, now,
            json.dumps({"attempt": claim.attempt}), *_slot_values(),
        ),
    )  # fmt: skip
    row = rows[0] if rows else None
    if row is None or row["cursor"] is None:
        return Recorded("discarded")
    ready: list[int] = list(row["ready"] or [])
    effects = completion_effects(claim, row, now)
    # This worker runs next a child it made ready or, failing one, the step it handed its
    # slot to: the hand-off then waits for no broker round trip.
    follow = [*ready, *(row["offered"] or [])]
    children = set(ready)
    lane = claim.task.priority or DEFAULT_PRIORITY
    # A step handed a slot has limits, as the children the statement says have them.
    limited = {*(row["ready_limited"] or []), *(row["offered"] or [])}
    effects.dispatch_after_commit(
        [i for i in follow[1:] if i in children], priority=lane, limited=limited
    )
    # A step handed a slot belongs to another task, whose lane is not read here.
    effects.dispatch_after_commit([i for i in follow[1:] if i not in children], limited=limited)
    store.changes.after_commit(effects)
    await _offer_again(store, row["recheck"] or [])
    if int(row["remaining"]) == 0 and row["finished_cursor"] is None:
        await store._settle(claim.task)
    return next_to_run(follow, limited)


async def complete_many_limited(
    store: "PgStore", attempts: Sequence[tuple[Claim, str]]
) -> list[Recorded]:
    """Complete steps with limits in one statement, free their slots and hand them to the
    keys' best waiting steps, which are sent after commit."""
    changes = store.changes
    recorded, unsettled, rows = await write_many(
        changes, attempts, COMPLETE_MANY_STATEMENT, *_slot_values()
    )
    if rows:  # every row names the same offers
        offers = Effects(changes.clock.now())
        # Steps of other tasks, whose lanes are not read here.
        offered = list(rows[0]["offered"] or [])
        offers.dispatch_after_commit(offered, limited=offered)
        changes.after_commit(offers)
        await _offer_again(store, rows[0]["recheck"] or [])
    for task in unsettled:
        await store._settle(task)
    return recorded


def _slot_values() -> tuple[str, ...]:
    """The values of `SLOT_ARGS`."""
    return HELD, WAITING, OFFERED, f"{limits.TASK_LIMIT}:%"


async def _offer_again(store: "PgStore", names: Sequence[str]) -> None:
    """Offer these keys again: a wait was recorded while the completion ran (its snapshot did
    not show it), now visible."""
    for name in names:
        async with store.changes.transaction() as tx:
            await lock_keys(tx, [name])
            await limits.offer(tx, *split_name(name))
