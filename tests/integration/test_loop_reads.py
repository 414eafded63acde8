"""Reads by key on the event loop's own thread (SQLite): the same rows as through Tortoise,
never a wait, never inside a transaction, and every failure handed back to Tortoise."""

import sqlite3
import time
from pathlib import Path
from uuid import uuid4

import pytest
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.exceptions import OperationalError
from tortoise.transactions import in_transaction

from server.container import Services
from server.db import loop_reads, reads
from server.db.sql import Query, connection
from server.domain.views import CreateTask
from tests.conftest import BACKEND

PAYMENT = CreateTask(namespace="payments", name="process_payment", context={"payment_id": 1})
COUNT = "SELECT count(*) FROM tasker_tasks"


async def test_a_point_read_is_the_same_read_on_both_backends(services: Services) -> None:
    task, _ = await services.tasks.create_task(PAYMENT)
    q = Query(connection())
    sql = f"SELECT id, status, context FROM tasker_tasks WHERE id = {reads.uuid_param(q, task.id)}"
    inline = [tuple(r) for r in await q.point_records(sql)]
    assert inline == [tuple(r) for r in await q.records(sql)]
    assert len(inline) == 1
    assert await reads.task_by_id(task.id) == task
    assert await reads.task_by_id(uuid4()) is None


sqlite_only = pytest.mark.skipif(BACKEND != "sqlite", reason="reads on the loop are SQLite's")


@sqlite_only
async def test_it_sees_each_commit_at_once(services: Services) -> None:
    conn = connection()
    seen: list[int] = []
    for _ in range(3):
        found = loop_reads.read(conn, COUNT, [])
        assert found is not None, "a file database outside a transaction is read in place"
        seen.append(found[0][0])
        await services.tasks.create_task(PAYMENT)
    assert seen == [0, 1, 2]


@sqlite_only
async def test_inside_a_transaction_it_steps_aside_and_outside_it_does_not_wait(
    services: Services,
) -> None:
    await services.tasks.create_task(PAYMENT)
    pool = connection()
    async with in_transaction() as tx:
        assert loop_reads.read(tx, COUNT, []) is None, "the transaction reads its own writes"
        await tx.execute_query("DELETE FROM tasker_tasks")
        # Tortoise's connection holds a write transaction: a read through it would wait for
        # the transaction; the reader neither waits nor sees the uncommitted delete (WAL).
        found = loop_reads.read(pool, COUNT, [])
        assert found is not None and found[0][0] == 1
        await tx.rollback()


@sqlite_only
async def test_a_failure_goes_back_to_tortoise_which_reports_it(services: Services) -> None:
    q = Query(connection())
    assert loop_reads.read(q.conn, "SELECT * FROM no_such_table", []) is None
    with pytest.raises(OperationalError, match="no_such_table"):
        await q.point_records("SELECT * FROM no_such_table")
    # A write is refused by the read-only reader and also handed back.
    assert loop_reads.read(q.conn, "DELETE FROM tasker_tasks", []) is None


def rows(found: list[sqlite3.Row] | None) -> list[tuple[object, ...]] | None:
    return None if found is None else [tuple(r) for r in found]


def test_a_locked_database_is_handed_back_at_once(tmp_path: Path) -> None:
    # Without WAL a writer's exclusive lock shuts readers out; the reader must not wait for
    # it on the event loop (aiosqlite's thread waits instead).
    path = str(tmp_path / "locked.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("INSERT INTO t VALUES (1)")
    client = SqliteClient(path, connection_name="locked")
    try:
        assert rows(loop_reads.read(client, "SELECT x FROM t", [])) == [(1,)]
        writer.execute("BEGIN EXCLUSIVE")
        began = time.monotonic()
        assert loop_reads.read(client, "SELECT x FROM t", []) is None
        assert time.monotonic() - began < 0.5
        writer.execute("COMMIT")
        assert rows(loop_reads.read(client, "SELECT x FROM t", [])) == [(1,)]
    finally:
        loop_reads.close_all()
        writer.close()


def test_an_in_memory_database_is_never_read_beside_tortoise() -> None:
    assert loop_reads.read(SqliteClient(":memory:", connection_name="m"), "SELECT 1", []) is None
    assert loop_reads._open("file:x?mode=memory&cache=shared") is None
