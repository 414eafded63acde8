"""Issue 7: a keyset page deep in the task list costs what the first page costs.

bench/million.py found GraphQL `tasks(after: ...)` slower the deeper the cursor: the condition
`created_at < c OR (created_at = c AND id < i)` gave PostgreSQL no bound for its index scan,
so it read and discarded every newer task. `reads.keyset_sql` bounds the scan.
"""

from datetime import timedelta

from tortoise import Tortoise

from server.container import Services
from server.db import reads
from server.db.models import Task
from server.db.sql import Query
from server.domain.views import CreateTask, TaskFilter
from server.services import queries


async def test_keyset_pages_visit_every_task_once_newest_first(services: Services) -> None:
    created = []
    for i in range(7):
        task, _ = await services.tasks.create_task(
            CreateTask(namespace="shapes", name="linear", context={"i": i})
        )
        created.append(task.id)
    # Two tasks share a creation time: the id breaks the tie.
    same = services.changes.clock.now() - timedelta(hours=1)
    await Task.filter(id__in=created[2:4]).update(created_at=same)
    seen, after = [], None
    while True:
        page = await services.tasks.list_tasks_after(TaskFilter(), first=2, after=after)
        seen.extend(t.id for t in page.items)
        if not page.has_next:
            break
        after = queries.encode_cursor(page.items[-1])
    assert sorted(seen) == sorted(created) and len(seen) == len(set(seen))
    rows = await Task.all().order_by("-created_at", "-id").values_list("id", flat=True)
    assert seen == list(rows)


async def test_the_cursor_bounds_the_index_scan(services: Services) -> None:
    conn = Tortoise.get_connection("default")
    if conn.capabilities.dialect != "postgres":
        return  # SQLite plans are not the concern here
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    cursor = queries.encode_cursor(await services.tasks.get_task(task.id))
    q = Query(conn)
    sql = reads.keyset_sql(q, TaskFilter(), queries.decode_cursor(cursor), 26)
    async with conn._in_transaction() as tx:
        # A few rows are cheaper to sort than to walk in order; plan as for a large table.
        for knob in ("seqscan", "bitmapscan", "sort"):
            await tx.execute_script(f"SET LOCAL enable_{knob} = off")
        rows = await tx.execute_query_dict(f"EXPLAIN {sql}", q.values)
    plan = "\n".join(str(v) for row in rows for v in row.values())
    # Newest first straight off the (created_at, id) index, starting at the cursor: no sort,
    # and the cursor is an index condition rather than a filter over every newer row.
    assert "Index Scan Backward" in plan and "Sort" not in plan, plan
    assert "created_at" in plan.split("Index Cond", 1)[-1].split("\n", 1)[0], plan
