"""PostgreSQL's statistics of the tasker tables, kept current so that the plans of prepared
statements follow the tables' growth.

A connection plans a prepared statement again only when a table it reads gets new statistics:
PostgreSQL caches a generic plan after five executions. A worker that starts on a new
database plans its claims while the tables hold a few rows, where reading the whole task table
is the cheapest way to find one task; with no ANALYZE since, every claim kept doing that as the
table grew (on the end-to-end benchmark, a fifth of the database's CPU per step at 1,000 tasks,
and it grows with the table). Autovacuum would analyze the table, but it looks at a database
once a minute, and it may be off (as on the machines our benchmarks run on).

So the sweeper, on every busy sweep, analyzes a tasker table that has more than doubled (and
by 200 rows) since its last ANALYZE: the plans depend on a table's size, and a table that
only grows is analyzed about a dozen times on its way to a million rows. Not autovacuum's rule
(a tenth of the rows changed): the engine updates each step's row several times, and every
ANALYZE makes every connection plan its statements again, which in a steady drain cost more
than it saved (`bench/engine_bench.py`: +0.1 ms of PostgreSQL CPU a step). ANALYZE samples a
fixed number of rows; `SKIP_LOCKED`: several sweepers at once analyze a table once. A role
that does not own the tables gets a warning from PostgreSQL and nothing else.
"""

import logging

from server.db.sql import connection, dialect

log = logging.getLogger(__name__)

DUE = r"""
SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
 WHERE s.schemaname = current_schema() AND s.relname LIKE 'tasker\_%'
   AND s.n_live_tup > 2 * GREATEST(c.reltuples, 0) + 200
 ORDER BY s.relname"""
"""The tasker tables that more than doubled since their last ANALYZE (`reltuples`, the rows it
counted, is -1 before the first one)."""


async def refresh_planner_stats() -> list[str]:
    """ANALYZE the tasker tables that are due (on PostgreSQL); returns their names."""
    conn = connection()
    if dialect(conn) != "postgres":
        return []
    _, rows = await conn.execute_query(DUE)
    due = [str(r["relname"]) for r in rows]
    if due:
        # Names read from the catalogue, quoted: nothing from outside reaches this text.
        await conn.execute_script("ANALYZE (SKIP_LOCKED) " + ", ".join(f'"{name}"' for name in due))
        log.debug("analyzed %s", ", ".join(due))
    return due
