"""The execution core: the one place a task's or step's status changes.

`changes` (state changes: move check, compare-and-set, history, readiness counters, events
after commit), `store` (the step store protocol) with `portable` and `pg_store` (+ `pg_sql`),
`runner` (claim under a lease, call the handler, record), `progress` (readiness and
finalization), `sweeper` (the safety net) and `outbox` (after-commit effects on a thread).
"""
