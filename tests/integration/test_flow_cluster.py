"""Flow control on real `tasker worker` processes (PostgreSQL + Redis): small versions of the
proofs of bench/flow_proof.py.

- a step limit of 2 per key across 60 tasks of 6 keys on 3 workers: never exceeded (history
  rows), every task completes, the verifier's flow invariants hold (nothing starved);
- priority lanes: 100 tasks at priority 1 queued, then 10 at priority 3, on 2 workers: every
  high task completes before the median low task starts.
"""

import asyncio

import asyncpg
import pytest

from bench.flow_proof import HANDLERS, MOST_RUNNING, create, invariants, producer, wait_complete
from tests.support.cluster import WorkerProcesses
from tests.support.production import PRODUCTION_ONLY

pytestmark = PRODUCTION_ONLY


@pytest.fixture
async def proof(database_url, broker_url, tmp_path):  # type: ignore[no-untyped-def]
    services = await producer(database_url, broker_url)
    workers = WorkerProcesses(database_url, broker_url, tmp_path)
    workers.env["TASKER_HANDLERS_PATH"] = str(HANDLERS)
    pg = await asyncpg.connect(database_url)
    try:
        yield services, workers, pg
    finally:
        workers.stop()
        await pg.close()
        await services.close()


async def test_a_step_limit_per_key_holds_across_three_worker_processes(proof) -> None:  # type: ignore[no-untyped-def]
    services, workers, pg = proof
    workers.start(3, threads=4)
    await create(services, "keyed", [{"tenant": f"t{i % 6}", "sleep": 0.2} for i in range(60)])
    waited = await wait_complete(pg, "keyed", 60, 60)
    done = await pg.fetchval("SELECT count(*) FROM tasker_tasks WHERE status = 'complete'")
    assert done == 60, f"{done}/60 complete after {waited:.0f} s\n" + workers.logs()[-3000:]
    most = await pg.fetchval(MOST_RUNNING, "keyed")
    assert most == 2, f"at most {most} steps of one key ran at once (limit 2)"
    assert await invariants(pg) == dict.fromkeys(await _labels(), 0)


async def test_high_priority_tasks_overtake_a_backlog_on_two_workers(proof) -> None:  # type: ignore[no-untyped-def]
    services, workers, pg = proof
    workers.start(2, threads=2)
    await asyncio.sleep(1.5)  # the workers are consuming: the backlog builds up in Redis
    # 100 x 0.5 s on 4 threads: about 12 s of work, mostly still queued when the high arrive.
    await create(services, "lanes", [{"group": "low", "sleep": 0.5}] * 100, priority=1)
    await create(services, "lanes", [{"group": "high", "sleep": 0.5}] * 10, priority=3)
    # The median low task is the 50th of 100 to start: no need to wait for the other 50.
    low_median = None
    for _ in range(300):
        low_median = await pg.fetchval(
            """SELECT s.started_at FROM tasker_workflow_steps s
                 JOIN tasker_tasks t ON t.id = s.task_id
                WHERE t.priority = 1 AND s.started_at IS NOT NULL
                ORDER BY s.started_at OFFSET 49 LIMIT 1"""
        )
        if low_median is not None:
            break
        await asyncio.sleep(0.2)
    assert low_median is not None, workers.logs()[-3000:]
    await wait_complete(pg, "lanes", 10, 30)  # at least the high ones, by now
    high = await pg.fetch("SELECT status, completed_at FROM tasker_tasks WHERE priority = 3")
    assert [r["status"] for r in high] == ["complete"] * 10
    late = [r["completed_at"] for r in high if r["completed_at"] > low_median]
    assert not late, f"{len(late)} high tasks completed after the median low task started"
    # The backlog was real: some low tasks had not started when the last high one was done.
    waiting = await pg.fetchval(
        """SELECT count(*) FROM tasker_workflow_steps s JOIN tasker_tasks t ON t.id = s.task_id
            WHERE t.priority = 1 AND (s.started_at IS NULL OR s.started_at > $1)""",
        max(r["completed_at"] for r in high),
    )
    assert waiting >= 50


async def _labels() -> list[str]:
    from bench.verify import FLOW_CHECKS

    return [label for label, _ in FLOW_CHECKS]


async def test_the_verifier_flags_a_key_left_waiting_while_another_takes_more(proof) -> None:  # type: ignore[no-untyped-def]
    """The "nothing starved" invariant can fail: a history written by hand where tenant A
    starts its second step while tenant B, ready 10 s earlier and running nothing, waits."""
    from bench.verify import FLOW_CHECKS

    services, _, pg = proof
    starved = next(sql for label, sql in FLOW_CHECKS if label.startswith("steps starved"))
    await create(services, "keyed", [{"tenant": "A"}, {"tenant": "B"}, {"tenant": "A"}])
    steps = await pg.fetch(
        """SELECT s.id, s.task_id, t.context->>'tenant' AS tenant FROM tasker_workflow_steps s
             JOIN tasker_tasks t ON t.id = s.task_id ORDER BY t.created_at, s.id"""
    )
    (b1,) = [s for s in steps if s["tenant"] == "B"]
    a1, a2 = [s for s in steps if s["tenant"] == "A"]
    # Ready times: a1 and b1 20 s ago, a2 10 s ago (their creation rows).
    for step, ago in ((a1, 20), (b1, 20), (a2, 10)):
        await pg.execute(
            """UPDATE tasker_transitions SET created_at = now() - make_interval(secs => $2)
                WHERE step_id = $1""",
            step["id"],
            ago,
        )

    async def claim(step) -> None:  # type: ignore[no-untyped-def]
        await pg.execute(
            """INSERT INTO tasker_transitions (task_id, step_id, step_name, from_status,
                       to_status, reason, metadata, created_at)
               VALUES ($1, $2, 'work', 'pending', 'in_progress', 'claimed', '{}', now())""",
            step["task_id"],
            step["id"],
        )

    await claim(a1)
    await claim(a2)  # A takes a second slot while B, ready long before a2, runs nothing
    assert await pg.fetchval(starved) == 1
    await pg.execute("DELETE FROM tasker_transitions WHERE to_status = 'in_progress'")
    await claim(a1)
    await claim(b1)
    await claim(a2)  # B got its turn first: fair
    assert await pg.fetchval(starved) == 0
