"""Map items on PostgreSQL (`server.engine.pg_item_sql`): a claim is one statement after the
one that locks the task; a completion, which also claims the next item for the same worker,
is one statement on its own (most items of a map are claimed that way).

The portable path (`MapItems`) takes about ten ORM statements for each, all under the task's
row lock, so the items of one map step ran at a fifth of the rate of plain steps. The rarer
moves stay on it: a failed or retried attempt, a reaped item, and `settle` after a
completion that claimed no next item (the step's last items, a pause, a cancel).
"""

import json
from dataclasses import replace

from server.engine.changes import TaskRef
from server.engine.map_items import ItemClaim, MapItems
from server.engine.map_slots import items_lease
from server.engine.pg_claims import attempt_claim, stored_json
from server.engine.pg_item_sql import CLAIM_ITEM, COMPLETE_ITEM, LOCK_TASK_OF_ITEM
from server.engine.pg_store import connection
from server.engine.store import ClaimRequest, Outcome


class PgMapItems(MapItems):
    """`MapItems` whose claims and completions are single statements."""

    async def claim(self, item_id: int, req: ClaimRequest) -> ItemClaim | None:
        async with self.changes.transaction() as tx:
            rows = await tx.conn.execute_query_dict(
                LOCK_TASK_OF_ITEM.sql, LOCK_TASK_OF_ITEM.values(item_id)
            )
            if not rows:
                return None
            t = rows[0]
            limit = self.limit_of(t["namespace"], t["name"], t["version"], t["step_name"])
            claimed = await tx.conn.execute_query_dict(
                CLAIM_ITEM.sql,
                CLAIM_ITEM.values(
                    item_id,
                    t["task_id"],
                    t["step_id"],
                    t["step_name"],
                    items_lease(t["step_id"]),
                    req.lease_owner,
                    limit,
                    tx.now,
                    req.default_timeout,
                    req.lease_grace,
                ),
            )
            if not claimed:
                return None
            r = claimed[0]
            claim = attempt_claim(
                r,
                req,
                step_id=t["step_id"],
                step_name=t["step_name"],
                task=TaskRef(t["task_id"], t["namespace"]),
                handler_name=t["name"],
                handler_version=t["version"],
            )
            return ItemClaim(item_id, r["idx"], stored_json(r["item"]), claim, limit)

    async def record(
        self, item: ItemClaim, outcome: Outcome, then: ClaimRequest | None = None
    ) -> tuple[str, int | ItemClaim | None]:
        if not outcome.ok:
            return await super().record(item, outcome, then)
        claim = item.claim
        rows = await connection().execute_query_dict(
            COMPLETE_ITEM.sql,
            COMPLETE_ITEM.values(
                item.item_id,
                claim.task.id,
                claim.step_id,
                claim.step_name,
                items_lease(claim.step_id),
                claim.lease_owner,
                outcome.encoded,
                then.lease_owner if then else None,
                claim.timeout,
                then.lease_grace if then else 0.0,
                self.changes.clock.now(),
            ),
        )
        r = rows[0]
        if not r["done"]:
            return "discarded", None
        if r["claimed"] is None or then is None:
            # The last item (complete the step), or a chain that found no next item: the
            # snapshot cannot tell, the task's lock can.
            await self.settle(claim.task, claim.step_id, claim.step_name, item.limit)
            return "complete", None
        item_id, index, value, attempts = json.loads(r["claimed"])
        next_claim = replace(claim, attempt=attempts, lease_owner=then.lease_owner)
        return "complete", ItemClaim(item_id, index, value, next_claim, item.limit)
