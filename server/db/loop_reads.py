"""SQLite reads of a few rows by key, run on the event loop's own thread.

Every statement through Tortoise's SQLite client crosses to aiosqlite's thread and back: a
queue put that wakes that thread, a write to the event loop's self-pipe that wakes this one,
and the callbacks in between. For a read of one task by its id, that crossing cost the event
loop ~40 µs and the database thread ~30 µs more, where SQLite answers in ~8 µs. Such reads
(a task by id, a task with its steps: indexed, a few rows) run here instead, on a read-only
connection of their own beside Tortoise's, and never wait:

- WAL lets this connection read while Tortoise's writes. A statement sees what was committed
  when it starts, as a read sent through Tortoise after that commit would.
- A read that would wait (SQLITE_BUSY without WAL, say) or fails in any way is not retried
  on the event loop: `read` returns None, and the caller reads through Tortoise, which waits
  or reports the error as always.
- Only Tortoise's own client, outside a transaction: a read inside one must see its writes.
- Only a file database: an in-memory one is private to its connection.

Statements are logged as Tortoise logs its own (`tortoise.db_client` at DEBUG).
"""

import sqlite3
from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionWrapper

_readers: "WeakKeyDictionary[SqliteClient, sqlite3.Connection]" = WeakKeyDictionary()
"""Each Tortoise client's reader. A client lives on one event loop, so its reader is only
used from that loop's thread."""


def read(conn: BaseDBAsyncClient, sql: str, values: Sequence[Any]) -> list[sqlite3.Row] | None:
    """The rows of `sql`, read at once; None: read them through `conn` instead."""
    if not isinstance(conn, SqliteClient) or isinstance(conn, SqliteTransactionWrapper):
        return None
    reader = _readers.get(conn)
    if reader is None:
        reader = _open(conn.filename)
        if reader is None:
            return None
        _readers[conn] = reader
    conn.log.debug("%s: %s", sql, values)
    try:
        cursor = reader.execute(sql, values)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()  # ends the read transaction, so checkpoints are not held back
    except sqlite3.Error:
        return None


def _open(filename: str) -> sqlite3.Connection | None:
    if filename == ":memory:" or "mode=memory" in filename:
        return None
    try:
        # No busy timeout: a read that would wait is given back, never waited for here.
        reader = sqlite3.connect(filename, isolation_level=None, timeout=0, check_same_thread=False)
        reader.execute("PRAGMA query_only = ON")
    except sqlite3.Error:
        return None
    reader.row_factory = sqlite3.Row
    return reader


def close_all() -> None:
    """Close every reader (before Tortoise's connections close: the files may go next)."""
    while _readers:
        _, reader = _readers.popitem()
        reader.close()
