"""The invariants after a bench.load (or bench.soak) run, read from the database.

Checks, each printed with its count; any violation makes the exit status 1:
 1. every task is terminal (complete, error, cancelled, resolved_manually), except one whose
    delayed start (`run_at`) has not come yet or with a step parked in a sleep or signal wait
    (`wake_at` ahead), and no step started before its task's start;
 1b. no cron schedule tick fired twice: one task per (schedule_id, scheduled_for), each with
    its unique (schedule, tick) fire row;
    no step started (a claim row) while its task or its handler was paused (between a
    `paused` / `handler paused` history row of the task and the matching resume);
 2. no step is left in progress, and a complete task has only complete/resolved steps; a
    `wait_for` step ended only by a signal it consumed or at its deadline, a `sleep` step
    never before its wake time;
 3. every completed step was completed exactly once (one `-> complete` history row, none for
    steps that are not complete), and its attempts equal its claims;
 4. skipped steps (a false `run_if`) and the steps a fork kept never ran their handler (no
    `in_progress` row), a skipped step is complete with no results;
 4b. the history is consistent: each step's and task's rows chain (`from` = previous `to`, the
    last `to` = the current status), no step was claimed before all its parents completed
    (by history order and by clock), each finished task was finalized exactly once;
 5. flow control, from the history rows: no step limit's key ever had more steps in progress
    than its limit, no handler limit's key more tasks in progress, no rate limit's key more
    starts in any window than its limit; every slot was released (no row holds a slot for a
    step no longer running, none waits for a step that can no longer start); nothing starved
    (no step waited while another key of the same limit, already running more, started a step
    that became ready well after it);
 6. map steps and child tasks (`bench.verify_dynamic`): never more items in progress than
    `max_parallel`, none left in progress, and a parent step completed only after its child;
 6. from the clients' record (bench/out/load.json): every acknowledged task exists and no
    other task does (no duplicate creations), every create succeeded, every idempotent
    re-submission returned the original task, every GraphQL subscriber saw its task's final
    transition (and that it matches the database) and received its task's whole history,
    each transition once and in cursor order, across its reconnections.

    .venv/bin/python -m bench.verify --database tasker_cluster --load bench/out/load.json
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg

from bench.cluster import OUT, PG_BASE
from bench.verify_dynamic import DYNAMIC_CHECKS
from server.domain.item_moves import ITEM_REASONS

FINISHED = ["complete", "error", "cancelled", "resolved_manually"]

CHECKS: list[tuple[str, str]] = [
    (
        "tasks not terminal (delayed ones not yet due, and sleeping or waiting ones, aside)",
        """SELECT count(*) FROM tasker_tasks t
         WHERE status <> ALL($1::text[]) AND (run_at IS NULL OR run_at <= now())
           AND NOT EXISTS (SELECT 1 FROM tasker_workflow_steps s
                            WHERE s.task_id = t.id AND s.status = 'pending'
                              AND s.wake_at > now())""",
    ),
    (
        "steps started before their task's delayed start",
        """SELECT count(*) FROM tasker_workflow_steps s JOIN tasker_tasks t ON t.id = s.task_id
         WHERE t.run_at IS NOT NULL AND s.started_at < t.run_at""",
    ),
    (
        "schedule ticks fired more than once",
        """SELECT count(*) FROM (SELECT schedule_id, scheduled_for FROM tasker_tasks
         WHERE schedule_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) x""",
    ),
    (
        "scheduled tasks without their (schedule, tick) fire row",
        """SELECT count(*) FROM tasker_tasks t LEFT JOIN tasker_schedule_fires f ON f.task_id = t.id
         WHERE t.schedule_id IS NOT NULL AND (f.id IS NULL OR f.schedule_id <> t.schedule_id
               OR f.tick <> t.scheduled_for)""",
    ),
    (
        # A pause (task or handler) and its resume are history rows of the task, drawn under
        # the task's lock as claims are: a claim between them started while it was paused.
        "steps started while their task or handler was paused",
        """SELECT count(*) FROM tasker_transitions c
         WHERE c.step_id IS NOT NULL AND c.to_status = 'in_progress'
           AND c.task_id IN (SELECT task_id FROM tasker_transitions
                              WHERE step_id IS NULL AND reason IN ('paused', 'handler paused'))
           AND EXISTS (
             SELECT 1 FROM (VALUES ('paused', 'resumed'), ('handler paused', 'handler resumed'))
                      AS k(pause, resume)
              WHERE (SELECT max(x.id) FROM tasker_transitions x
                      WHERE x.task_id = c.task_id AND x.step_id IS NULL
                        AND x.reason = k.pause AND x.id < c.id)
                  > COALESCE((SELECT max(y.id) FROM tasker_transitions y
                               WHERE y.task_id = c.task_id AND y.step_id IS NULL
                                 AND y.reason = k.resume AND y.id < c.id), 0))""",
    ),
    (
        "signal waits that ended without a signal or before their deadline",
        """SELECT count(*) FROM tasker_transitions h
          JOIN tasker_workflow_steps s ON s.id = h.step_id
         WHERE s.waits_for IS NOT NULL AND h.to_status IN ('complete', 'error')
           AND h.reason <> 'failed'
           AND NOT (
             (h.reason = 'signal' AND EXISTS (
                SELECT 1 FROM tasker_signals g WHERE g.consumed_by_id = s.id))
             OR (h.reason = 'timeout' AND h.created_at >= (
                SELECT max((p.metadata->>'until')::timestamptz) FROM tasker_transitions p
                 WHERE p.step_id = s.id AND p.to_status = 'pending'
                   AND p.reason = 'waiting for signal')))""",
    ),
    (
        "sleep steps that ended before their wake time",
        """SELECT count(*) FROM tasker_transitions h
          JOIN tasker_workflow_steps s ON s.id = h.step_id
         WHERE s.handler_class = 'tasker:sleep' AND h.to_status = 'complete'
           AND h.created_at < COALESCE((h.metadata->>'slept_until')::timestamptz, h.created_at)""",
    ),
    (
        "steps left in progress",
        "SELECT count(*) FROM tasker_workflow_steps WHERE status = 'in_progress'",
    ),
    (
        "complete tasks with unfinished steps",
        """SELECT count(*) FROM tasker_workflow_steps s JOIN tasker_tasks t ON t.id = s.task_id
         WHERE t.status = 'complete' AND s.status NOT IN ('complete', 'resolved_manually')""",
    ),
    (
        "steps completed more than once",
        """SELECT count(*) FROM (SELECT step_id FROM tasker_transitions
         WHERE step_id IS NOT NULL AND to_status = 'complete'
         GROUP BY step_id HAVING count(*) > 1) x""",
    ),
    (
        "complete steps without exactly one completion row",
        """SELECT count(*) FROM tasker_workflow_steps s LEFT JOIN (
             SELECT step_id, count(*) AS n FROM tasker_transitions
              WHERE step_id IS NOT NULL AND to_status = 'complete' GROUP BY step_id) h
             ON h.step_id = s.id
         WHERE s.status = 'complete' AND COALESCE(h.n, 0) <> 1""",
    ),
    (
        "steps not complete but with a completion row",
        """SELECT count(*) FROM tasker_workflow_steps s JOIN (
             SELECT DISTINCT step_id FROM tasker_transitions
              WHERE step_id IS NOT NULL AND to_status = 'complete') h ON h.step_id = s.id
         WHERE s.status <> 'complete'""",
    ),
    (
        "steps whose attempts differ from their claims",
        """SELECT count(*) FROM tasker_workflow_steps s LEFT JOIN (
             SELECT step_id, count(*) AS n FROM tasker_transitions
              WHERE step_id IS NOT NULL AND to_status = 'in_progress' GROUP BY step_id) h
             ON h.step_id = s.id
         WHERE s.attempts <> COALESCE(h.n, 0)""",
    ),
    (
        "step history rows that do not chain",
        """SELECT count(*) FROM (SELECT from_status, lag(to_status) OVER w AS prev,
                                      row_number() OVER w AS n
                                FROM tasker_transitions WHERE step_id IS NOT NULL
                              WINDOW w AS (PARTITION BY step_id ORDER BY id)) x
         WHERE (n = 1 AND from_status IS NOT NULL)
            OR (n > 1 AND from_status IS DISTINCT FROM prev)""",
    ),
    (
        "steps whose last history row is not their status",
        """SELECT count(*) FROM tasker_workflow_steps s LEFT JOIN (
             SELECT DISTINCT ON (step_id) step_id, to_status FROM tasker_transitions
              WHERE step_id IS NOT NULL ORDER BY step_id, id DESC) h ON h.step_id = s.id
         WHERE s.status IS DISTINCT FROM h.to_status""",
    ),
    (
        "task history rows that do not chain",
        """SELECT count(*) FROM (SELECT from_status, lag(to_status) OVER w AS prev,
                                      row_number() OVER w AS n
                                FROM tasker_transitions WHERE step_id IS NULL
                              WINDOW w AS (PARTITION BY task_id ORDER BY id)) x
         WHERE (n = 1 AND from_status IS NOT NULL)
            OR (n > 1 AND from_status IS DISTINCT FROM prev)""",
    ),
    (
        "tasks whose last history row is not their status",
        """SELECT count(*) FROM tasker_tasks t LEFT JOIN (
             SELECT DISTINCT ON (task_id) task_id, to_status FROM tasker_transitions
              WHERE step_id IS NULL ORDER BY task_id, id DESC) h ON h.task_id = t.id
         WHERE t.status IS DISTINCT FROM h.to_status""",
    ),
    (
        "tasks finalized more than once",
        """SELECT count(*) FROM (SELECT task_id FROM tasker_transitions
         WHERE step_id IS NULL AND to_status = ANY($1::text[])
         GROUP BY task_id HAVING count(*) > 1) x""",
    ),
    (
        "steps claimed before a parent completed (history order)",
        """WITH claims AS (SELECT step_id, min(id) AS first_claim, min(created_at) AS claimed_at
                          FROM tasker_transitions WHERE to_status = 'in_progress'
                           AND step_id IS NOT NULL GROUP BY step_id),
             done AS (SELECT step_id, min(id) AS done_id FROM tasker_transitions
                       WHERE step_id IS NOT NULL AND to_status IN ('complete', 'resolved_manually')
                       GROUP BY step_id)
        SELECT count(*) FROM tasker_step_edges e JOIN claims c ON c.step_id = e.to_step_id
          LEFT JOIN done d ON d.step_id = e.from_step_id
         WHERE d.done_id IS NULL OR d.done_id > c.first_claim""",
    ),
    (
        "skipped steps (false run_if) that ran their handler (an in_progress row)",
        """SELECT count(*) FROM tasker_workflow_steps s
         -- Built-in steps (a signal wait skipped at its deadline) are claimed, never run.
         WHERE s.skipped AND s.handler_class NOT LIKE 'tasker:%'
           AND EXISTS (SELECT 1 FROM tasker_transitions h
                                      WHERE h.step_id = s.id AND h.to_status = 'in_progress')""",
    ),
    (
        "skipped steps not complete, or with results",
        """SELECT count(*) FROM tasker_workflow_steps
         WHERE skipped AND (status <> 'complete' OR results IS NOT NULL
                            AND results::text <> 'null')""",
    ),
    (
        "steps a fork kept that ran their handler (an in_progress row)",
        """SELECT count(*) FROM tasker_transitions k
         WHERE k.reason = 'kept' AND EXISTS (SELECT 1 FROM tasker_transitions h
                                              WHERE h.step_id = k.step_id
                                                AND h.to_status = 'in_progress')""",
    ),
    (
        "steps started before a parent completed (clock)",
        """SELECT count(*) FROM tasker_step_edges e
          JOIN tasker_workflow_steps c ON c.id = e.to_step_id
          JOIN tasker_workflow_steps p ON p.id = e.from_step_id
         WHERE c.started_at IS NOT NULL
           AND (p.completed_at IS NULL OR c.started_at < p.completed_at)""",
    ),
]

# Flow control (server.engine.limits): a step's limits are in workflow_steps.flow.
_STEP_LIMITS = """SELECT s.id AS step_id, s.task_id, l->>'kind' AS kind, l->>'scope' AS scope,
                         l->>'key' AS key, (l->>'limit')::int AS lim,
                         (l->>'period')::float AS period
                    FROM tasker_workflow_steps s, jsonb_array_elements(s.flow->'limits') l
                   WHERE s.flow IS NOT NULL"""
FLOW_CHECKS: list[tuple[str, str]] = [
    (
        "step-limit keys over their limit (history order)",
        f"""WITH lim AS ({_STEP_LIMITS}),
             ev AS (SELECT lim.scope, lim.key, lim.lim, tr.id,
                           CASE WHEN tr.to_status = 'in_progress' THEN 1 ELSE -1 END AS d
                      FROM tasker_transitions tr JOIN lim ON lim.step_id = tr.step_id
                     WHERE lim.kind = 'step'
                       AND (tr.to_status = 'in_progress' OR tr.from_status = 'in_progress')),
             run AS (SELECT scope, key, lim,
                            sum(d) OVER (PARTITION BY scope, key ORDER BY id) AS n FROM ev)
        SELECT count(DISTINCT (scope, key)) FROM run WHERE n > lim""",
    ),
    (
        "handler-limit keys over their limit (history order)",
        f"""WITH lim AS (SELECT DISTINCT task_id, scope, key, lim FROM ({_STEP_LIMITS}) x
                        WHERE kind = 'task'),
             ev AS (SELECT lim.scope, lim.key, lim.lim, tr.id,
                           CASE WHEN tr.to_status = 'in_progress' THEN 1 ELSE -1 END AS d
                      FROM tasker_transitions tr JOIN lim ON lim.task_id = tr.task_id
                     WHERE tr.step_id IS NULL
                       AND (tr.to_status = 'in_progress' OR tr.from_status = 'in_progress')),
             run AS (SELECT scope, key, lim,
                            sum(d) OVER (PARTITION BY scope, key ORDER BY id) AS n FROM ev)
        SELECT count(DISTINCT (scope, key)) FROM run WHERE n > lim""",
    ),
    (
        "rate-limit keys with more starts in a window than their limit",
        f"""WITH lim AS ({_STEP_LIMITS}),
             starts AS (SELECT lim.scope, lim.key, lim.lim, lim.period, tr.created_at AS at
                          FROM tasker_transitions tr JOIN lim ON lim.step_id = tr.step_id
                         WHERE lim.kind = 'rate' AND tr.to_status = 'in_progress')
        SELECT count(DISTINCT (a.scope, a.key)) FROM starts a
         WHERE (SELECT count(*) FROM starts b WHERE b.scope = a.scope AND b.key = a.key
                   AND b.at <= a.at AND b.at > a.at - make_interval(secs => a.period)) > a.lim""",
    ),
    (
        "limit slots held for steps no longer running",
        """SELECT count(*) FROM tasker_limit_slots ls
             LEFT JOIN tasker_workflow_steps s ON s.id = ls.step_id
             LEFT JOIN tasker_tasks t ON t.id = ls.task_id
          WHERE ls.state = 'held' AND CASE WHEN ls.scope LIKE 'task:%'
                THEN t.status IS DISTINCT FROM 'in_progress' AND t.status IS DISTINCT FROM 'pending'
                ELSE s.status IS DISTINCT FROM 'in_progress'
                     OR s.lease_owner IS DISTINCT FROM ls.lease_owner END""",
    ),
    (
        "steps waiting for a slot that can no longer start",
        """SELECT count(*) FROM tasker_limit_slots ls
             JOIN tasker_workflow_steps s ON s.id = ls.step_id
          WHERE ls.state <> 'held' AND s.status NOT IN ('pending', 'error')""",
    ),
    (
        "limit key rows whose counters disagree with their slot rows",
        """SELECT count(*) FROM tasker_limit_keys k
          WHERE k.in_use <> (SELECT count(*) FROM tasker_limit_slots ls
                              WHERE ls.scope = k.scope AND ls."key" = k."key"
                                AND ls.state IN ('held', 'offered'))
             OR k.waiting <> (SELECT count(*) FROM tasker_limit_slots ls
                               WHERE ls.scope = k.scope AND ls."key" = k."key"
                                 AND ls.state = 'waiting')""",
    ),
]
STARVED_AFTER_SECONDS = 5
"""How much longer a step may wait than a later-ready one of another key before it counts as
starved: a nudge lost with a Redis restart is re-sent by the sweeper within a few seconds."""

FLOW_CHECKS.append(
    (
        "steps starved: another key of the same limit, with more running, started a step ready "
        f"over {STARVED_AFTER_SECONDS} s later",
        # For each pair (a of key A, b of key B, same limit): b was ready well before a, yet a
        # started first, at a moment when A already had more steps running than B. B then
        # waited while A took more than its share. Readiness: the last parent's completion,
        # else the step's creation row; start: its first claim; counts: in history order.
        f"""WITH lim AS MATERIALIZED (SELECT * FROM ({_STEP_LIMITS}) x WHERE kind = 'step'),
             ev AS MATERIALIZED (
                SELECT lim.scope, lim.key, tr.id,
                       sum(CASE WHEN tr.to_status = 'in_progress' THEN 1 ELSE -1 END)
                           OVER (PARTITION BY lim.scope, lim.key ORDER BY tr.id) AS n
                  FROM tasker_transitions tr JOIN lim ON lim.step_id = tr.step_id
                 WHERE tr.to_status = 'in_progress' OR tr.from_status = 'in_progress'),
             st AS MATERIALIZED (
                SELECT lim.step_id, lim.scope, lim.key, lim.lim,
                       (SELECT min(tr.id) FROM tasker_transitions tr
                         WHERE tr.step_id = lim.step_id AND tr.to_status = 'in_progress')
                           AS claim_id,
                       COALESCE((SELECT max(p.completed_at) FROM tasker_step_edges e
                                   JOIN tasker_workflow_steps p ON p.id = e.from_step_id
                                  WHERE e.to_step_id = lim.step_id),
                                (SELECT min(tr.created_at) FROM tasker_transitions tr
                                  WHERE tr.step_id = lim.step_id)) AS ready_at
                  FROM lim)
        SELECT count(DISTINCT b.step_id) FROM st a JOIN st b
            ON b.scope = a.scope AND b.lim = a.lim AND b.key <> a.key
         WHERE a.claim_id IS NOT NULL
           AND b.ready_at < a.ready_at - make_interval(secs => {STARVED_AFTER_SECONDS})
           AND (b.claim_id IS NULL OR b.claim_id > a.claim_id)
           AND COALESCE((SELECT n FROM ev WHERE ev.scope = b.scope AND ev.key = b.key
                           AND ev.id < a.claim_id ORDER BY ev.id DESC LIMIT 1), 0)
             < COALESCE((SELECT n FROM ev WHERE ev.scope = a.scope AND ev.key = a.key
                           AND ev.id < a.claim_id ORDER BY ev.id DESC LIMIT 1), 0)""",
    )
)
CHECKS += FLOW_CHECKS

FIGURES: list[tuple[str, str]] = [
    ("tasks", "SELECT count(*) FROM tasker_tasks"),
    ("steps", "SELECT count(*) FROM tasker_workflow_steps"),
    ("step edges", "SELECT count(*) FROM tasker_step_edges"),
    ("history rows", "SELECT count(*) FROM tasker_transitions"),
    (
        "step attempts (claims)",
        "SELECT count(*) FROM tasker_transitions WHERE to_status = 'in_progress'"
        " AND step_id IS NOT NULL",
    ),
    (
        "attempts that timed out (StepTimeout)",
        "SELECT count(*) FROM tasker_transitions WHERE metadata->>'error_class' = 'StepTimeout'",
    ),
    (
        "attempts reclaimed from killed workers (WorkerLost)",
        "SELECT count(*) FROM tasker_transitions WHERE metadata->>'error_class' = 'WorkerLost'",
    ),
    (
        "pauses and resumes (task and handler history rows)",
        "SELECT count(*) FROM tasker_transitions WHERE step_id IS NULL"
        " AND reason IN ('paused', 'resumed', 'handler paused', 'handler resumed')",
    ),
    (
        "attempts that failed and were retried",
        "SELECT count(*) FROM tasker_transitions WHERE reason = 'retry scheduled'",
    ),
    (
        "steps with flow-control limits",
        "SELECT count(*) FROM tasker_workflow_steps WHERE flow IS NOT NULL",
    ),
    (
        "tasks superseded by a concurrency strategy",
        "SELECT count(*) FROM tasker_transitions WHERE step_id IS NULL AND reason = 'superseded'",
    ),
]


CHECKS += DYNAMIC_CHECKS  # map items and child tasks (bench/verify_dynamic.py)


async def task_history_only(conn: asyncpg.Connection) -> None:
    """Make `tasker_transitions` mean the tasks' and steps' own moves on this connection: a
    temporary view of that name is found before the table, and leaves out the rows of map
    items (`server.domain.item_moves`), which move items, not the step they name. The checks
    that read item rows name the table itself, `public.tasker_transitions`."""
    items = ", ".join(f"'{reason}'" for reason in ITEM_REASONS)
    await conn.execute(
        "CREATE TEMPORARY VIEW tasker_transitions AS SELECT * FROM public.tasker_transitions "
        f"WHERE reason IS NULL OR reason NOT IN ({items})"
    )


async def database_checks(url: str) -> tuple[dict[str, int], dict[str, Any], list[str]]:
    conn = await asyncpg.connect(url)
    await task_history_only(conn)
    try:
        figures: dict[str, Any] = {}
        for label, sql in FIGURES:
            figures[label] = await conn.fetchval(sql)
        by_status = await conn.fetch(
            "SELECT status, count(*) AS n FROM tasker_tasks GROUP BY 1 ORDER BY 1"
        )
        figures["tasks by status"] = {r["status"]: r["n"] for r in by_status}
        steps_by = await conn.fetch(
            "SELECT status, count(*) AS n FROM tasker_workflow_steps GROUP BY 1 ORDER BY 1"
        )
        figures["steps by status"] = {r["status"]: r["n"] for r in steps_by}
        span = await conn.fetchrow(
            """SELECT min(created_at) AS first, max(completed_at) AS last,
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
                          completed_at - COALESCE(run_at, created_at))) AS p50,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM
                          completed_at - COALESCE(run_at, created_at))) AS p99
                 FROM tasker_tasks WHERE status = 'complete'"""
        )
        if span["first"] is not None:
            seconds = (span["last"] - span["first"]).total_seconds() or 1.0
            done_steps = await conn.fetchval(
                "SELECT count(*) FROM tasker_workflow_steps WHERE status = 'complete'"
            )
            figures["first create -> last completion (s)"] = round(seconds, 1)
            figures["completed steps/s over that span"] = round(done_steps / seconds, 1)
            figures["finished tasks/s over that span"] = round(
                sum(v for k, v in figures["tasks by status"].items() if k in FINISHED) / seconds, 1
            )
            steady = await conn.fetchrow(
                """SELECT percentile_cont(0.1) WITHIN GROUP (ORDER BY extract(epoch FROM
                              completed_at)) AS t10,
                          percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM
                              completed_at)) AS t90, count(*) AS n
                     FROM tasker_tasks WHERE completed_at IS NOT NULL"""
            )
            if steady["t90"] and steady["t90"] > steady["t10"]:
                figures["steady finished tasks/s (10 % -> 90 % of completions)"] = round(
                    0.8 * steady["n"] / (steady["t90"] - steady["t10"]), 1
                )
            figures["complete task latency p50 / p99 (s)"] = (
                f"{span['p50']:.2f} / {span['p99']:.2f}"
            )
        counts: dict[str, int] = {}
        for label, sql in CHECKS:
            args = [FINISHED] if "$1" in sql else []
            counts[label] = int(await conn.fetchval(sql, *args))
        ids: list[str] = []
        return counts, figures, ids
    finally:
        await conn.close()


async def client_checks(url: str, load: dict[str, Any]) -> tuple[dict[str, int], dict[str, Any]]:
    conn = await asyncpg.connect(url)
    await task_history_only(conn)
    try:
        rows = await conn.fetch("SELECT id::text AS id, idempotency_key, status FROM tasker_tasks")
        followed = [f["task_id"] for f in load["follows"]]
        histories = await conn.fetch(
            "SELECT task_id::text AS id, array_agg(id ORDER BY id) AS cursors "
            "FROM tasker_transitions WHERE task_id = ANY($1::uuid[]) GROUP BY task_id",
            followed,
        )
    finally:
        await conn.close()
    db = {r["id"]: r for r in rows}
    by_key = {r["idempotency_key"]: r["id"] for r in rows if r["idempotency_key"]}
    created = load["created"]
    acked = {c["id"] for c in created}
    counts = {
        "creates that failed": len(load["errors"]),
        "acknowledged tasks missing from the database": len(acked - set(db)),
        "tasks in the database nobody acknowledged (duplicates)": len(set(db) - acked),
        "acknowledged ids that are not their key's task": sum(
            by_key.get(c["key"]) != c["id"] for c in created
        ),
    }
    resub = load["resubmissions"]
    counts["re-submissions that did not return the original task"] = sum(
        r["returned_id"] is None
        or r["returned_id"] != r["original_id"]
        or by_key.get(r["key"]) != r["original_id"]
        for r in resub
    )
    counts["later REST re-submissions not answered 200"] = sum(
        r["kind"] == "later" and r["via"] == "rest" and r["http_status"] != 200 for r in resub
    )
    follows = load["follows"]
    counts["subscribers that missed their task's final transition"] = sum(
        not f["completed"] or f["final"] is None for f in follows
    )
    counts["subscribers whose final transition differs from the database"] = sum(
        f["final"] is not None
        and db.get(f["task_id"]) is not None
        and f["final"] != db[f["task_id"]]["status"]
        for f in follows
    )
    counts["subscriptions that reported errors"] = sum(bool(f["errors"]) for f in follows)
    # Each subscribes from cursor 0 and resumes after the last cursor it received: it must
    # have received its task's whole history, each transition once, in order.
    history = {r["id"]: list(r["cursors"]) for r in histories}
    counts["subscribers that missed, repeated or reordered a transition"] = sum(
        "cursors" in f and f["cursors"] != history.get(f["task_id"], []) for f in follows
    )
    figures = {
        "tasks planned": load["planned"],
        "tasks acknowledged": len(created),
        "  via REST / GraphQL": (
            f"{sum(c['via'] == 'rest' for c in created)} / "
            f"{sum(c['via'] == 'graphql' for c in created)}"
        ),
        "client-side retries of creates (server down)": load.get("create_retries", 0),
        "idempotent re-submissions": len(resub),
        "  racing the original / later": (
            f"{sum(r['kind'] == 'race' for r in resub)} / "
            f"{sum(r['kind'] == 'later' for r in resub)}"
        ),
        "GraphQL subscriptions": len(follows),
        "  subscription events received": sum(f["events"] for f in follows),
        "  subscriber reconnects (resumed with `after`)": load.get("subscriber_reconnects", 0),
        "faults injected": _fault_summary(load.get("faults", [])),
        "most PostgreSQL connections seen (all processes)": load.get("max_postgres_backends"),
        "create latency p50 / p99 (ms)": (
            f"{load['create_latency_ms']['p50']:.0f} / {load['create_latency_ms']['p99']:.0f}"
        ),
    }
    return counts, figures


def _fault_summary(events: list[dict[str, Any]]) -> str:
    kinds: dict[str, int] = {}
    for e in events:
        if e["what"] in ("started", "stopped"):
            continue
        kinds[e["what"]] = kinds.get(e["what"], 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in kinds.items()) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="tasker_cluster")
    parser.add_argument(
        "--load",
        type=Path,
        default=OUT / "load.json",
        help="the clients' record; 'none' to check the database only",
    )
    args = parser.parse_args()
    url = f"{PG_BASE}/{args.database}"
    counts, figures, _ = asyncio.run(database_checks(url))
    if str(args.load) != "none":
        load = json.loads(args.load.read_text())
        client_counts, client_figures = asyncio.run(client_checks(url, load))
        counts.update(client_counts)
        figures.update(client_figures)
    print(f"verify {url}")
    print("figures:")
    for label, value in figures.items():
        print(f"  {label:<55} {value}")
    print("invariants (violations):")
    bad = 0
    for label, n in counts.items():
        bad += n
        print(f"  {'FAIL' if n else 'ok  '} {label:<60} {n}")
    print("RESULT:", "FAIL" if bad else "PASS", f"({bad} violations)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
