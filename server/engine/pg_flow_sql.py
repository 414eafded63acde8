"""The PostgreSQL statements of a step with limits: its claim and its completion, each ONE
statement (data-modifying CTEs), as the unlimited CLAIM and COMPLETE of `pg_sql` are.

Locks, in the order every writer takes them: the task row, then the step row, then the key
rows of the step's limits sorted by (scope, key) (`tasker_limit_keys`, `limit_keys.lock_keys`).
Under READ COMMITTED a row locked after a wait is read at its newest version, so the key row's
counters decide (two claims racing for a key's last slot see each other), where counting the
slot rows in the statement's snapshot would not.

The claim takes what it needs only when every limit has room: a concurrency slot (`in_use` + 1
and a `held` row), a rate start (counted in the key's `starts` buckets, `rate_window`). A
handler slot is taken by the task's first start only (the locked task row is still pending).
A step offered a slot (a waiter woken by a completion) turns its offer into the held slot.
A step refused for a slot the first time, with nothing else to decide, is recorded waiting
by the statement itself (a `waiting` row for the first full key, the key's `waiting` count, its
dispatch stamp parked), so a burst of refusals holds each key row for one statement, not for a
transaction. A key seen for the first time has no row to lock: the statement names it
(`missing`), and the caller creates the row and runs the statement again. Anything else that
is not admitted (a step already waiting, a rate refusal, an offer that another key refuses)
returns no claim, and the portable claim decides it under the same locks (`limits.admit`); a
step that is not claimable at all (a duplicate message for a running step, a paused task) is
refused by the statement alone, as the unlimited claim refuses it.
So this statement never admits what the portable claim would refuse; it counts the slot rows
as the portable claim does before it records a wait.

The completion frees the step's slot (and the handler's when it finished the task), offers it
to the key's best waiting step (highest priority, then the oldest) and returns it to be sent
after commit. When the key row counts waiting steps that the statement's snapshot did not show
(a wait recorded while it ran), it names the key, and the caller offers it in a transaction.
Completions that arrive together are written together (`COMPLETE_MANY_LIMITED`): the bulk
completion, then the same freeing and offering of their slots, one offer per slot freed.
"""

from server.domain.rate_window import BUCKETS_PER_PERIOD
from server.engine.limits import MAX_LIMITS
from server.engine.pg_complete import MANY_COLUMNS, MANY_FROM, MANY_STEPS
from server.engine.pg_sql import (
    CLAIM_HISTORY,
    CLAIM_ROW,
    CLAIM_STEP,
    CLAIMABLE_STEP,
    CLAIMED_COLUMNS,
    COMPLETE_STEP,
    COMPLETED_ROW,
    STEP_LOCKS,
    TASK_LOCK,
)


def _buckets(column: str) -> str:
    """A rate key's kept starts as (time, count) rows: `[time, count]` pairs, or the bare
    times of rows written before buckets (`rate_window.read`)."""
    return f"""SELECT CASE WHEN jsonb_typeof(e.v) = 'array' THEN (e.v->>0)::float8
                 ELSE e.v::text::float8 END AS at,
            CASE WHEN jsonb_typeof(e.v) = 'array' THEN (e.v->>1)::int ELSE 1 END AS n
       FROM jsonb_array_elements({column}) AS e(v)"""


_WIDTH = f"(keys.period / {BUCKETS_PER_PERIOD})"
AFTER_START = f"""SELECT COALESCE(jsonb_agg(jsonb_build_array(at, n) ORDER BY at), '[]'::jsonb)
       FROM (SELECT at, n, sum(n) OVER (ORDER BY at DESC) - n AS newer FROM (
             -- One pass over the kept buckets and this start's: those in the window summed
             -- by their time, those that left it merged into one (grouped under NULL) at
             -- their latest time, its count capped at the limit.
             SELECT max(b.at) AS at,
                    CASE WHEN bool_or(b.gone) THEN least(sum(b.n), keys.lim)
                         ELSE sum(b.n) END::int AS n
               FROM (SELECT a.at, a.n, a.at <= $epoch::float8 - keys.period AS gone FROM (
                     {_buckets("k.starts")}
                     UNION ALL SELECT ceil($epoch::float8 / {_WIDTH}) * {_WIDTH}, 1) AS a
                      WHERE a.at > $epoch::float8 - keys.period - $keep::float8) AS b
              GROUP BY CASE WHEN b.gone THEN NULL ELSE b.at END) AS kept) AS newest
      -- The newest buckets that hold `lim` starts.
      WHERE newer < keys.lim"""
"""`rate_window.after_start` in SQL: the locked key row's buckets after a start at `$epoch`."""

CLAIM_LIMITED = f"""
WITH candidate AS (
    -- Claimable, by the conditions the unlimited claim trusts alone: a step that is not (a
    -- duplicate message for a running step, a paused task) is refused by this statement,
    -- with nothing left for the portable claim to decide.
    SELECT ws.ctid AS step_row, t.ctid AS task_row, ws.status AS old_status, ws.flow,
           ws.task_id, t.status AS task_status, $lease::text AS lease,
           $default_timeout::float8 AS default_timeout, $grace::float8 AS grace
      FROM tasker_workflow_steps ws JOIN tasker_tasks t ON t.id = ws.task_id
     WHERE ws.id = $step_id AND ws.waiting_on = 0
       AND ws.flow IS NOT NULL{CLAIMABLE_STEP}{STEP_LOCKS}
), target AS (
    -- A step that waits for a slot goes the portable way; one offered a slot does not.
    SELECT c.* FROM candidate c
     WHERE NOT EXISTS (SELECT 1 FROM tasker_limit_slots s
                        WHERE s.step_id = $step_id AND s.state <> $offered::text)
), wanted AS (
    SELECT l->>'scope' AS scope, l->>'key' AS "key", l->>'kind' AS kind,
           (l->>'limit')::int AS lim, (l->>'period')::float8 AS period, l_ord AS ord
      FROM target, jsonb_array_elements(target.flow->'limits') WITH ORDINALITY AS e(l, l_ord)
     WHERE l->>'kind' <> $task_kind::text OR target.task_status = $start_from::text
     -- Said, so that the planner expects a few rows here, not its default guess of 100 (for
     -- which it read the whole key table to update these keys' rows).
     ORDER BY 1, 2 LIMIT {MAX_LIMITS}
), mine AS (
    -- The slots offered to this step (counted in their keys' in_use since the offer).
    SELECT s.id, s.scope, s."key" FROM tasker_limit_slots s, target
     WHERE s.step_id = $step_id AND s.state = $offered::text
), keys AS (
    -- Each key row looked up by its unique index and locked, in the order of `wanted`
    -- (sorted by scope and key). As a join, the planner read the whole key table for them
    -- (one row for every key ever seen: every customer of a per-customer limit).
    SELECT k.in_use, k.starts, w.kind, w.lim, w.period, w.scope, w."key", w.ord,
           EXISTS (SELECT 1 FROM mine m WHERE m.scope = w.scope AND m."key" = w."key")
               AS offered_here
      FROM wanted w CROSS JOIN LATERAL (
           SELECT k.in_use, k.starts FROM tasker_limit_keys k
            WHERE k.scope = w.scope AND k."key" = w."key" LIMIT 1 FOR UPDATE) AS k
), verdict AS (
    SELECT (SELECT count(*) FROM keys) = (SELECT count(*) FROM wanted)
           AND COALESCE(bool_and(CASE WHEN kind = $rate_kind::text
               THEN (SELECT COALESCE(sum(b.n), 0) FROM ({_buckets("keys.starts")}) AS b
                      WHERE b.at > $epoch::float8 - keys.period) < keys.lim
               ELSE keys.offered_here OR keys.in_use < keys.lim END), TRUE) AS ok
      FROM keys
), taken AS (
    -- An offer becomes the held slot, unless the sweeper took it back meanwhile (re-read
    -- under the key's lock): then nothing is claimed and the portable claim decides.
    UPDATE tasker_limit_slots s SET state = $held::text, lease_owner = $lease::text
      FROM mine, verdict
     WHERE s.id = mine.id AND s.state = $offered::text AND verdict.ok
 RETURNING s.id
), claimed AS ({CLAIM_STEP}
      FROM target, verdict
     WHERE ws.ctid = target.step_row AND verdict.ok
       AND (SELECT count(*) FROM taken) = (SELECT count(*) FROM mine){CLAIMED_COLUMNS}
), bump AS (
    UPDATE tasker_limit_keys k
       SET in_use = k.in_use + CASE WHEN keys.kind = $rate_kind::text THEN 0 ELSE 1 END,
           -- The buckets kept after this start (`server.domain.rate_window`).
           starts = CASE WHEN keys.kind = $rate_kind::text
               THEN ({AFTER_START}) ELSE k.starts END
      FROM keys, verdict
     -- By its key, not its ctid: the row version locked above may be newer than this
     -- statement's snapshot, where a ctid lookup would find nothing and skip the update.
     WHERE k.scope = keys.scope AND k."key" = keys."key" AND NOT keys.offered_here
       AND EXISTS (SELECT 1 FROM claimed)
 RETURNING k.id
), held AS (
    INSERT INTO tasker_limit_slots
           (scope, "key", step_id, task_id, state, lease_owner, "limit", priority, created_at)
    SELECT keys.scope, keys."key", $step_id, target.task_id, $held::text, $lease::text, keys.lim,
           COALESCE((target.flow->>'priority')::int, 2), $now
      FROM keys, claimed, target WHERE keys.kind <> $rate_kind::text AND NOT keys.offered_here
 RETURNING id
), refused AS (
    -- Refused for a slot and nothing else to decide (every key row there, no rate limit, no
    -- offer): the first full key, in the order of the step's limits as the portable claim
    -- takes them, records the step as waiting, its dispatch stamp parked (`limits._wait`).
    SELECT keys.scope, keys."key", keys.lim FROM keys, verdict
     WHERE NOT verdict.ok AND keys.kind <> $rate_kind::text AND keys.in_use >= keys.lim
       -- Full by the slot rows too, counted as the portable claim counts them: a holder whose
       -- step (or, for a handler limit, task) no longer runs does not count, e.g. a task just
       -- cancelled; the key row learns of it only at the next recount.
       AND (SELECT count(*) FROM tasker_limit_slots ls
             WHERE ls.scope = keys.scope AND ls."key" = keys."key"
               AND (ls.state = $offered::text
                    OR (ls.state = $held::text AND CASE WHEN keys.kind = $task_kind::text
                        THEN EXISTS (SELECT 1 FROM tasker_tasks t WHERE t.id = ls.task_id
                                        AND (t.status = ANY($active_tasks::text[])) IS TRUE)
                        ELSE EXISTS (SELECT 1 FROM tasker_workflow_steps h
                                      WHERE h.id = ls.step_id AND h.status = $running::text
                                        AND h.lease_owner = ls.lease_owner) END))) >= keys.lim
       AND (SELECT count(*) FROM keys) = (SELECT count(*) FROM wanted)
       AND NOT EXISTS (SELECT 1 FROM wanted r WHERE r.kind = $rate_kind::text)
       AND NOT EXISTS (SELECT 1 FROM mine)
     ORDER BY keys.ord LIMIT 1
), waits AS (
    INSERT INTO tasker_limit_slots
           (scope, "key", step_id, task_id, state, "limit", priority, created_at)
    SELECT r.scope, r."key", $step_id, target.task_id, $waiting::text, r.lim,
           COALESCE((target.flow->>'priority')::int, 2), $now
      FROM refused r, target
 RETURNING scope, "key"
), counted AS (
    UPDATE tasker_limit_keys k SET waiting = k.waiting + 1
      FROM waits w WHERE k.scope = w.scope AND k."key" = w."key"
 RETURNING k.id
), parked AS (
    UPDATE tasker_workflow_steps ws SET dispatched_at = $parked_until
      FROM target WHERE ws.ctid = target.step_row AND EXISTS (SELECT 1 FROM waits)
 RETURNING ws.id
), {CLAIM_HISTORY}
SELECT x.*, (SELECT ws.flow IS NOT NULL FROM tasker_workflow_steps ws WHERE ws.id = $step_id)
           AS limited, EXISTS (SELECT 1 FROM waits) AS waited,
       EXISTS (SELECT 1 FROM candidate) AS candidate,
       ARRAY(SELECT w.scope || '|' || w."key" FROM wanted w
              WHERE NOT EXISTS (SELECT 1 FROM keys k WHERE k.scope = w.scope
                                                       AND k."key" = w."key")) AS missing
  FROM (SELECT 1) AS one LEFT JOIN LATERAL (
{CLAIM_ROW}  ) AS x ON TRUE
"""

SLOTS_FREED = """, freed AS (
    -- The completed steps' slots, and their tasks' handler slots once no longer active
    -- (`task` holds each task's row as the completion left it).
    DELETE FROM tasker_limit_slots s USING done, task
     WHERE s.state = $held::text AND s.task_id = done.task_id AND task.id = done.task_id
       AND CASE WHEN s.scope LIKE $task_scopes::text
                THEN task.status <> ALL($active_tasks::text[])
                ELSE s.step_id = done.id END
 RETURNING s.scope, s."key", s."limit"
), freed_keys AS (
    SELECT scope, "key", count(*) AS n, max("limit") AS lim FROM freed GROUP BY scope, "key"
), keys AS (
    SELECT k.scope, k."key", k.in_use, f.n, f.lim
      FROM tasker_limit_keys k JOIN freed_keys f ON k.scope = f.scope AND k."key" = f."key"
     ORDER BY k.scope, k."key"
       FOR UPDATE OF k
), chosen AS (
    -- Each key's best waiting steps (highest priority, then the oldest), one per slot freed
    -- while the key has room.
    SELECT id FROM (
        SELECT w.id, LEAST(k.n, k.lim - (k.in_use - k.n)) AS room,
               row_number() OVER (PARTITION BY w.scope, w."key"
                                  ORDER BY w.priority DESC, w.created_at, w.id) AS place
          FROM tasker_limit_slots w JOIN keys k ON w.scope = k.scope AND w."key" = k."key"
         WHERE w.state = $waiting::text) AS line
     WHERE place <= room
), offered AS (
    UPDATE tasker_limit_slots s SET state = $offered::text, offered_at = $now
      FROM chosen WHERE s.id = chosen.id AND s.state = $waiting::text
 RETURNING s.step_id, s.scope, s."key"
), offered_keys AS (
    SELECT scope, "key", count(*) AS n FROM offered GROUP BY scope, "key"
), settled AS (
    UPDATE tasker_limit_keys k
       SET in_use = k.in_use - keys.n + COALESCE(o.n, 0), waiting = k.waiting - COALESCE(o.n, 0)
      FROM keys LEFT JOIN offered_keys o ON o.scope = keys.scope AND o."key" = keys."key"
     WHERE k.scope = keys.scope AND k."key" = keys."key"
 RETURNING k.scope, k."key", k.waiting, COALESCE(o.n, 0) AS n_offered
)"""
"""What a completion of steps with limits adds to `done` and `task`: their slots freed and
offered to the keys' waiting steps (`pg_store` runs the offered ones)."""

OFFERS = """,
       ARRAY(SELECT step_id FROM offered) AS offered,
       ARRAY(SELECT scope || '|' || "key" FROM settled WHERE waiting > 0 AND n_offered = 0)
           AS recheck"""
"""The steps offered a slot, and the keys to offer again: a wait recorded while the statement
ran (its snapshot did not show it)."""

COMPLETE_LIMITED = f"""
WITH task_lock AS (
    -- The task row first, then its steps, then the key rows (the order of every writer).{TASK_LOCK}
), {COMPLETE_STEP}{SLOTS_FREED}{COMPLETED_ROW}{OFFERS}
"""

COMPLETE_MANY_LIMITED = MANY_STEPS + SLOTS_FREED + MANY_COLUMNS + OFFERS + MANY_FROM
"""The bulk completion (`pg_complete`) of steps with limits: the same arrays in, the same rows
out, each also naming every step offered a slot and every key to offer again."""
