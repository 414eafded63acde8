"""The verifier's invariants for map steps and child tasks (`bench.verify` runs them too).

- no map step ever had more items in progress than its `max_parallel`: each item's last
  attempt is an interval [started_at, completed_at) (open while it runs, or when its earlier
  attempt's completion predates its start); the running count over each step's intervals
  never exceeds the limit its handler's definition stores;
- no item is left in progress, and a complete map step has only complete items;
- a parent step waiting on a child completed only once the child had: the child is complete
  (or resolved) and finished no later than the step.
"""

_LIMITS = """WITH limits AS (
             SELECT n.id AS named_task_id, s->>'name' AS step_name,
                    (s->>'max_parallel')::int AS lim
               FROM tasker_named_tasks n, jsonb_array_elements(n.definition->'steps') s
              WHERE s->>'max_parallel' IS NOT NULL),"""
"""Each map step's `max_parallel`, as its handler's definition stores it."""

_MOST_OVER_LIMIT = """most AS (SELECT step_id, max(n) AS n FROM running GROUP BY step_id)
         SELECT count(*) FROM most m
           JOIN tasker_workflow_steps ws ON ws.id = m.step_id
           JOIN tasker_tasks t ON t.id = ws.task_id
           JOIN limits l ON l.named_task_id = t.named_task_id AND l.step_name = ws.name
          WHERE m.n > l.lim"""
"""The map steps whose most items running at once (`running`: step_id, n) exceeded it."""

DYNAMIC_CHECKS: list[tuple[str, str]] = [
    (
        "map steps over max_parallel (from the items' rows)",
        f"""{_LIMITS}
           ev AS (
             SELECT step_id, started_at AS at, 1 AS d FROM tasker_step_items
              WHERE started_at IS NOT NULL
             UNION ALL
             SELECT step_id, CASE WHEN completed_at >= started_at THEN completed_at
                                  ELSE 'infinity'::timestamptz END, -1
               FROM tasker_step_items WHERE started_at IS NOT NULL),
           running AS (
             SELECT step_id, sum(d) OVER (PARTITION BY step_id ORDER BY at, d
                                          ROWS UNBOUNDED PRECEDING) AS n FROM ev),
           {_MOST_OVER_LIMIT}""",
    ),
    (
        # The same from the items' history rows: +1 at each claim, -1 at each recorded
        # attempt, in the order the task's lock gave them.
        "map steps over max_parallel (from the items' history rows)",
        f"""{_LIMITS}
           running AS (
             SELECT step_id, sum(CASE WHEN reason = 'item claimed' THEN 1 ELSE -1 END)
                        OVER (PARTITION BY step_id ORDER BY id) AS n
               FROM public.tasker_transitions
              WHERE reason IN ('item claimed', 'item complete', 'item retrying', 'item failed')),
           {_MOST_OVER_LIMIT}""",
    ),
    (
        "map items left in progress",
        "SELECT count(*) FROM tasker_step_items WHERE status = 'in_progress'",
    ),
    (
        "complete map steps with unfinished items",
        """SELECT count(DISTINCT i.step_id) FROM tasker_step_items i
           JOIN tasker_workflow_steps ws ON ws.id = i.step_id
          WHERE ws.status = 'complete' AND i.status <> 'complete'""",
    ),
    (
        "parent steps complete before their child task",
        """SELECT count(*) FROM tasker_tasks c
           JOIN tasker_workflow_steps ps
             ON ps.task_id = c.parent_task_id AND ps.name = c.parent_step
          WHERE ps.status = 'complete'
            AND (c.status NOT IN ('complete', 'resolved_manually')
                 OR c.completed_at IS NULL OR ps.completed_at < c.completed_at)""",
    ),
]
