"""The PostgreSQL step store: a claim or a completion is ONE statement (data-modifying CTEs).

Atomic without BEGIN/COMMIT, one round trip each. They do what the portable store does —
compare-and-set on the step, history rows, readiness counters — and the same tests run against
both. Under READ COMMITTED an UPDATE re-checks its WHERE clause against the newest row version,
so the compare-and-set holds when two workers race for one step. Failures are rarer and go
through the portable store's transaction. Claims, and completions, that arrive while one is
being written are written together in one statement (`pg_sql.CLAIM`, `server.engine.pg_complete`,
each through a `GroupCommit` of the process).

The rules are `server.domain.readiness`'s, over the counters `waiting_on` (parents not done) and
`remaining` (steps not done) that `Transaction.move_step` maintains. No status is written in the
SQL text: each statement names the moves it makes (checked against the allowed-move tables when
this module loads) and takes their states as parameters, `$<move>_from` / `$<move>_to`, so a
test reads every (from, to) pair the SQL writes (tests/unit/test_pg_store_moves.py).

Every row a statement changes is addressed by its primary key or, once locked, by its `ctid`,
never by a predicate the planner could serve from another index: on tables not yet analyzed
(a new database, or a burst before autovacuum catches up) PostgreSQL costed the status indexes
the same as the primary key and chose them, and each claim walked every pending step and
task (bench/engine_bench.py: ~1.7 ms of database CPU per step).
"""

import asyncio
import json
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from server.domain.flow import DEFAULT_PRIORITY
from server.domain.readiness import CLAIMABLE_TASK_STATES, RETRYING
from server.domain.retry import BackoffPolicy
from server.domain.states import StepState, TaskState
from server.engine.changes import StateChanges, TaskRef
from server.engine.group_commit import GroupCommit
from server.engine.pg_claims import claim_from_row
from server.engine.pg_complete import (
    COMPLETE_MOVES,
    complete_many,
    completion_effects,
    next_to_run,
)
from server.engine.pg_flow import claim_limited, complete_limited, complete_many_limited
from server.engine.pg_sql import CLAIM, COMPLETE, Move, Statement
from server.engine.portable import PortableStore
from server.engine.progress import advance
from server.engine.store import Claim, ClaimRequest, Outcome, Recorded

_S, _T = StepState, TaskState
T = TypeVar("T")

CLAIM_STATEMENT = Statement(
    CLAIM,
    args=("step_ids", "leases", "default_timeouts", "graces", "now"),
    moves={
        "retry": Move("step", RETRYING, _S.PENDING),
        "claim": Move("step", _S.PENDING, _S.IN_PROGRESS),
        "start": Move("task", _T.PENDING, _T.IN_PROGRESS),
    },
    states={"claimable_tasks": sorted(CLAIMABLE_TASK_STATES)},
)

COMPLETE_STATEMENT = Statement(
    COMPLETE,
    args=("step_id", "lease", "results", "now", "metadata"),
    moves=COMPLETE_MOVES,
    # A child is dispatched when it is pending and this was its last parent not done
    # (`readiness.is_ready`).
    states={"ready_state": _S.PENDING},
)


async def _answers(writes: Sequence[Awaitable[T]]) -> list[T]:
    """Each write's answer, in order; one alone (the runner's case) is awaited as it is, with
    no task to wrap it in."""
    if len(writes) == 1:
        return [await writes[0]]
    return list(await asyncio.gather(*writes))


def connection() -> BaseDBAsyncClient:
    """The default connection."""
    return Tortoise.get_connection("default")


class PgStore(PortableStore):
    """`StepStore` with claims and completions as single PostgreSQL statements."""

    async def claim(self, requests: Sequence[ClaimRequest]) -> list[Claim | None]:
        """Through a group commit, the claims said to have no limits: those that arrive
        while one is written are written together, in one statement. A step said to have
        limits goes to their statement (`pg_flow`), as does one the plain statement left
        alone (which has limits, or is not claimable)."""
        return await _answers([self._claim_one(r) for r in requests])

    def __init__(self, changes: StateChanges, backoff: BackoffPolicy) -> None:
        super().__init__(changes, backoff)
        self.completions: GroupCommit[tuple[Claim, str], Recorded] = GroupCommit(
            self._complete_batch
        )
        """Completions arriving while one is written are written together next
        (`server.engine.group_commit`)."""
        self.limited_completions: GroupCommit[tuple[Claim, str], Recorded] = GroupCommit(
            self._complete_limited_batch
        )
        self.claims: GroupCommit[ClaimRequest, Claim | None] = GroupCommit(self._claim_batch)

    async def complete(self, attempts: Sequence[tuple[Claim, Outcome]]) -> list[Recorded]:
        """Through the group commits: one for steps with limits (whose statements also free
        and hand off their slots), one for the others."""
        writes = [
            (self.limited_completions if c.limited else self.completions).submit((c, o.encoded))
            for c, o in attempts
        ]
        return await _answers(writes)

    async def _complete_batch(self, attempts: Sequence[tuple[Claim, str]]) -> list[Recorded]:
        """One completion alone: the one-step statement; several: the bulk one."""
        if len(attempts) == 1:
            return [await self._complete_one(*attempts[0])]
        recorded, unsettled = await complete_many(self.changes, attempts)
        for task in unsettled:
            await self._settle(task)
        return recorded

    async def _complete_limited_batch(
        self, attempts: Sequence[tuple[Claim, str]]
    ) -> list[Recorded]:
        """One alone: its statement, which may hand its slot to this worker's next step;
        several: the bulk one."""
        if len(attempts) == 1:
            return [await complete_limited(self, *attempts[0])]
        return await complete_many_limited(self, attempts)

    async def _claim_one(self, req: ClaimRequest) -> Claim | None:
        if req.limited:  # said to have limits: their statement first
            claim, limited = await claim_limited(self, req)
            if claim is not None or limited:
                return claim
            return await self.claims.submit(req)  # it has none after all
        claim = await self.claims.submit(req)
        if claim is not None:
            return claim
        # The plain statement leaves steps with limits alone: they have their own (`pg_flow`).
        return (await claim_limited(self, req))[0]

    async def _claim_batch(self, requests: Sequence[ClaimRequest]) -> list[Claim | None]:
        """Claims of steps without limits in one statement; None for each step it did not
        claim."""
        now = self.changes.clock.now()
        rows = await connection().execute_query_dict(
            CLAIM_STATEMENT.sql,
            CLAIM_STATEMENT.values(
                [r.step_id for r in requests],
                [r.lease_owner for r in requests],
                [r.default_timeout for r in requests],
                [r.lease_grace for r in requests],
                now,
            ),
        )
        by_lease = {row["lease_owner"]: row for row in rows}
        start = CLAIM_STATEMENT.moves["start"]
        return [
            None
            if (row := by_lease.get(r.lease_owner)) is None
            else claim_from_row(self.changes, row, r, start, now)
            for r in requests
        ]

    async def _complete_one(self, claim: Claim, encoded: str) -> Recorded:
        """Complete a step we hold the lease on (its results already JSON), count it done, and
        finish the task when it was its last step; `discarded` if the lease was lost."""
        now = self.changes.clock.now()
        metadata = json.dumps({"attempt": claim.attempt})
        rows = await connection().execute_query_dict(
            COMPLETE_STATEMENT.sql,
            COMPLETE_STATEMENT.values(claim.step_id, claim.lease_owner, encoded, now, metadata),
        )
        row = rows[0] if rows else None
        if row is None or row["cursor"] is None:
            return Recorded("discarded")
        ready: list[int] = list(row["ready"] or [])
        effects = completion_effects(claim, row, now)
        effects.dispatch_after_commit(
            ready[1:],
            priority=claim.task.priority or DEFAULT_PRIORITY,
            limited=row["ready_limited"],
        )
        self.changes.after_commit(effects)
        if int(row["remaining"]) == 0 and row["finished_cursor"] is None:
            # All steps done but the task was not running (e.g. reopened from error): the
            # general path under the task lock decides.
            await self._settle(claim.task)
        return next_to_run(ready, row["ready_limited"])

    async def _settle(self, task: TaskRef) -> None:
        async with self.changes.transaction() as tx:
            status = await tx.lock_task(task.id)
            if status is not None:
                await advance(tx, task, status)
