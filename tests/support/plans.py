"""PostgreSQL query plans for tests that pin an index to the statement it serves."""

from collections.abc import Callable

from tortoise.transactions import in_transaction

from server.db.sql import Query

# A test's tables are tiny, and scanning and sorting them is cheapest: the question a plan
# test asks is whether an index path exists at all, so everything else is priced out.
_INDEX_PATHS_ONLY = (
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; "
    "SET LOCAL enable_incremental_sort = off; SET LOCAL enable_bitmapscan = off"
)


async def plan_lines(build: Callable[[Query], str]) -> list[str]:
    """The EXPLAIN lines of the statement `build` writes, index paths preferred."""
    async with in_transaction() as tx:
        await tx.execute_script(_INDEX_PATHS_ONLY)
        q = Query(tx)
        sql = build(q)
        rows = await q.rows("EXPLAIN " + sql)
    return [str(next(iter(r.values()))) for r in rows]


def index_condition_on(lines: list[str], *columns: str) -> bool:
    """Whether some index is searched by all these columns (not merely filtered by them)."""
    return any("Index Cond" in ln and all(c in ln for c in columns) for ln in lines)
