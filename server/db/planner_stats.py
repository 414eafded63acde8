"""PostgreSQL's statistics of the tasker tables, kept current so that the plans of prepared
statements follow the tables' growth.

A connection plans a prepared statement again only when a table it reads gets new statistics:
PostgreSQL caches a generic plan after five executions. A worker that starts on a new
database plans its claims while the tables hold a few rows, where reading the whole task table
is the cheapest way to find one task; with no ANALYZE since, every claim kept doing that as the
table grew (on the end-to-end benchmark, a fifth of the database's CPU per step at 1,000 tasks,
and it grows with the table). Autovacuum analyzes a table once it has changed by 10 % plus 50
rows, but it looks at a database once a minute, and it may be off (it is on the machines our
benchmarks run on). The sweeper applies that rule itself on every busy sweep: a statement that
finds the tables due, and one ANALYZE of them.

ANALYZE samples a fixed number of rows (its cost does not grow with the table) and, by the
rule, comes rarer as a table grows. `SKIP_LOCKED`: several sweepers at once analyze a table
once. A role that does not own the tables gets a warning from PostgreSQL and nothing else.
"""

import logging

from server.db.sql import connection, dialect

log = logging.getLogger(__name__)

DUE = r"""
SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
 WHERE s.schemaname = current_schema() AND s.relname LIKE 'tasker\_%'
   AND s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0)
 ORDER BY s.relname"""
"""The tasker tables changed by more than autovacuum's default threshold since their last
ANALYZE (`reltuples` is -1 before the first one)."""


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
