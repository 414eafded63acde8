"""The key rows of flow control (`tasker_limit_keys`): locked by every writer of a key, and
kept equal to the key's slot rows so that one statement can test and take a slot.

A key row holds `in_use` (the key's `held` + `offered` slot rows), `waiting` (its `waiting`
rows) and, for a rate limit, `starts` (its recent starts, `server.domain.rate_window`). The
PostgreSQL claim of a limited step (`server.engine.pg_flow_sql`) locks the rows of its keys and
reads them at their newest version, which a count of slot rows in the statement's snapshot
would not give. The portable paths (`server.engine.limits`) change slot rows under the same
row locks and then `recount` the key, so both kinds of writer agree on one counter.
"""

from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from server.db.models import LimitKey
from server.domain import rate_window
from server.engine.changes import Transaction

HELD, OFFERED, WAITING = "held", "offered", "waiting"

KEEP_STARTS_SECONDS = 60.0
"""How long a rate limit's starts are kept past their window. A claim's time is read before it
waits for the key's lock, so a claim admitted after another may carry an earlier time: it must
still count every start the other one made inside its own window, which the other's clean-up
(by its later time) would otherwise have deleted. Counting every kept start later than the
window's opening, whatever its time, then holds the limit in every window of the history.
The starts are kept as buckets of bounded number (`server.domain.rate_window`): about a
hundred a key whatever its limit, where a start each rewrote a window's worth of them."""


def split_name(name: str) -> tuple[str, str]:
    """`scope|key` -> (scope, key): a scope never holds `|`, a key may."""
    scope, _, key = name.partition("|")
    return scope, key


_INSERT_KEYS = (
    'INSERT INTO tasker_limit_keys (scope, "key", in_use, waiting, starts)'
    " SELECT s, k, 0, 0, '[]'::jsonb FROM unnest($1::text[], $2::text[]) AS u(s, k)"
    ' ORDER BY s, k ON CONFLICT (scope, "key")'
)
"""PostgreSQL: the key rows of (scopes, keys), in sorted order; the caller says what a row
that exists already gets."""


async def create_keys(conn: BaseDBAsyncClient, names: Sequence[str]) -> None:
    """PostgreSQL: make sure the key rows of `scope|key` names exist, committed by a statement
    of their own, so that the limited claim that found them missing can run again and lock
    them (a key's row is never deleted once made)."""
    pairs = sorted({split_name(n) for n in names})
    await conn.execute_query(
        _INSERT_KEYS + " DO NOTHING", [[s for s, _ in pairs], [k for _, k in pairs]]
    )


async def lock_keys(tx: Transaction, names: Sequence[str]) -> None:
    """Make sure the key rows of `scope|key` names exist and, on PostgreSQL, lock them until
    the transaction ends, in sorted order (so two writers never wait for each other's keys).
    SQLite runs one write transaction at a time: creating the rows is enough."""
    pairs = sorted({split_name(n) for n in names})
    if not pairs:
        return
    if tx.conn.capabilities.dialect == "postgres":
        # ON CONFLICT DO UPDATE locks an existing row; an inserted one is ours until commit.
        await tx.conn.execute_query(
            _INSERT_KEYS + " DO UPDATE SET in_use = tasker_limit_keys.in_use",
            [[s for s, _ in pairs], [k for _, k in pairs]],
        )
        return
    for scope, key in pairs:
        await tx.conn.execute_query(
            'INSERT OR IGNORE INTO tasker_limit_keys (scope, "key", in_use, waiting, starts)'
            " VALUES (?, ?, 0, 0, '[]')",
            [scope, key],
        )


_RECOUNT = """UPDATE tasker_limit_keys SET
 in_use = (SELECT count(*) FROM tasker_limit_slots
            WHERE scope = $1 AND "key" = $2 AND state IN ($3, $4)),
 waiting = (SELECT count(*) FROM tasker_limit_slots
             WHERE scope = $5 AND "key" = $6 AND state = $7)
 WHERE scope = $8 AND "key" = $9"""


async def recount(tx: Transaction, scope: str, key: str) -> None:
    """Set the key row's counters from its slot rows (call under the key's lock)."""
    sql = _RECOUNT
    if tx.conn.capabilities.dialect != "postgres":
        sql = sql.replace("$", "?")
        for n in range(9, 0, -1):
            sql = sql.replace(f"?{n}", "?")
    args: list[Any] = [scope, key, HELD, OFFERED, scope, key, WAITING, scope, key]
    await tx.conn.execute_query(sql, args)


async def record_start(
    tx: Transaction, scope: str, key: str, kept: rate_window.Buckets, period: float, limit: int
) -> None:
    """A rate limit key's buckets after a start now (`server.domain.rate_window`)."""
    buckets = rate_window.after_start(kept, tx.now.timestamp(), period, limit, KEEP_STARTS_SECONDS)
    await (
        LimitKey.filter(scope=scope, key=key)
        .using_db(tx.conn)
        .update(starts=rate_window.stored(buckets))
    )


async def kept_starts(tx: Transaction, scope: str, key: str) -> rate_window.Buckets:
    """A rate limit key's buckets, read from its row: call under the key's lock, so that the
    row is read at its newest version."""
    found = (
        await LimitKey.filter(scope=scope, key=key)
        .using_db(tx.conn)
        .values_list("starts", flat=True)
    )
    return rate_window.read(found[0] if found else None)
