"""Flow control proven on real processes: keyed limits under faults, a rate limit, priority lanes.

Each proof runs on its own `bench.cluster` (PostgreSQL, a private Redis on port 6392 so it can be
restarted, real `tasker worker` processes); this process only creates tasks (through the core,
dispatching to Redis as `tasker serve` does) and reads the history rows afterwards.

a.  `keyed` (step concurrency 2 per tenant): 200 tasks over 10 tenants on 3 workers. From the
    history: the most steps of one tenant ever in progress, every task complete, and the
    verifier's flow invariants (never over a limit, every slot released, nothing starved).
a'. the same while worker 0 is `kill -9`ed mid-run (and restarted) and Redis is restarted.
b.  `metered` (10 starts per second on one tenant): 300 tasks on 3 workers, about 30 s. The
    most starts in any 1-second window, and the achieved rate over the run.
c.  `lanes` on 2 workers: 300 tasks at priority 1 created, then 20 at priority 3. Whether the
    last high task completed before the median low task started; next to the same run with the
    20 late tasks at the same priority as the backlog (the FIFO baseline).

    .venv/bin/python -m bench.flow_proof            # all proofs, about 3 minutes
    .venv/bin/python -m bench.flow_proof --only c   # one of a, faults, b, c
"""

import argparse
import asyncio
import time
from datetime import datetime
from typing import Any

import asyncpg

from bench.cluster import PG_BASE, ROOT, Cluster
from bench.verify import FLOW_CHECKS

HANDLERS = ROOT / "tests" / "fixtures" / "flowproof"
DATABASE = "tasker_flow_proof"
REDIS_PORT = 6392
PROOF_ENV = {
    "TASKER_HANDLERS_PATH": str(HANDLERS),
    # Short waits so a killed worker's steps come back within seconds, not minutes.
    "TASKER_DEFAULT_STEP_TIMEOUT": "5",
    "TASKER_LEASE_GRACE_SECONDS": "1",
    "TASKER_SWEEP_INTERVAL": "0.5",
    "TASKER_REDISPATCH_AFTER": "2",
    "TASKER_HEARTBEAT_INTERVAL": "1",
    "TASKER_WORKER_METRICS_PORT": "0",
}


async def producer(database_url: str, broker_url: str, handlers: str = str(HANDLERS)) -> Any:
    """Core services that create tasks and dispatch to Redis, consuming nothing."""
    from server.config import Settings
    from server.container import build_services
    from server.infra.ports import NullDispatcher
    from workers.pool import WorkerPool
    from workers.runtime import LoopRuntime

    settings = Settings(database_url=database_url, broker_url=broker_url, handlers_path=handlers)
    services = build_services(settings, NullDispatcher())
    await services.open(migrate=False)
    WorkerPool(services, LoopRuntime(asyncio.get_running_loop()), threads=1)  # the dispatcher
    return services


async def create(
    services: Any, name: str, contexts: list[dict[str, Any]], priority: int | None = None
) -> None:
    """Create one `flowproof` task per context, 50 at a time."""
    from server.domain.views import CreateTask

    for i in range(0, len(contexts), 50):
        await asyncio.gather(
            *(
                services.tasks.create_task(
                    CreateTask(namespace="flowproof", name=name, context=c, priority=priority)
                )
                for c in contexts[i : i + 50]
            )
        )


async def wait_complete(pg: asyncpg.Connection, name: str, count: int, timeout: float) -> float:
    """Wait until `count` tasks of `name` are complete; returns the seconds waited."""
    started = time.monotonic()
    while (
        await pg.fetchval(
            "SELECT count(*) FROM tasker_tasks WHERE name = $1 AND status = 'complete'", name
        )
        < count
    ):
        if time.monotonic() - started > timeout:
            break
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def invariants(pg: asyncpg.Connection) -> dict[str, int]:
    """The verifier's flow-control checks (bench/verify.py), each with its violation count."""
    return {label: int(await pg.fetchval(sql)) for label, sql in FLOW_CHECKS}


MOST_RUNNING = """
WITH ev AS (SELECT s.id, s.flow->'limits'->0->>'key' AS key, tr.id AS at,
                   CASE WHEN tr.to_status = 'in_progress' THEN 1 ELSE -1 END AS d
              FROM tasker_transitions tr
              JOIN tasker_workflow_steps s ON s.id = tr.step_id
              JOIN tasker_tasks t ON t.id = s.task_id
             WHERE t.name = $1
               AND (tr.to_status = 'in_progress' OR tr.from_status = 'in_progress'))
SELECT COALESCE(max(n), 0) FROM (SELECT sum(d) OVER (PARTITION BY key ORDER BY at) AS n FROM ev) r
"""


async def keyed(pg: asyncpg.Connection, services: Any, tasks: int, keys: int) -> dict[str, Any]:
    """Proof (a) without faults: figures from the history rows."""
    contexts = [{"tenant": f"t{i % keys}", "sleep": 0.2} for i in range(tasks)]
    started = time.monotonic()
    await create(services, "keyed", contexts)
    await wait_complete(pg, "keyed", tasks, 120)
    return await keyed_figures(pg, tasks, time.monotonic() - started)


async def keyed_figures(pg: asyncpg.Connection, tasks: int, took: float) -> dict[str, Any]:
    done = await pg.fetchval(
        "SELECT count(*) FROM tasker_tasks WHERE name = 'keyed' AND status = 'complete'"
    )
    return {
        "complete": f"{done}/{tasks}",
        "most running per key (limit 2)": await pg.fetchval(MOST_RUNNING, "keyed"),
        "attempts that ended in error (reclaimed from the killed worker: WorkerLost)": dict(
            await pg.fetch(
                """SELECT metadata->>'error_class', count(*) FROM tasker_transitions
                    WHERE step_id IS NOT NULL AND to_status = 'error' GROUP BY 1"""
            )
        ),
        "seconds": round(took, 1),
        **await invariants(pg),
    }


async def keyed_faults(
    cluster: Cluster, pg: asyncpg.Connection, services: Any, tasks: int, keys: int
) -> dict[str, Any]:
    """Proof (a) with a worker kill -9 (then restarted) and a Redis restart mid-run."""
    contexts = [{"tenant": f"t{i % keys}", "sleep": 0.5} for i in range(tasks)]
    started = time.monotonic()
    await create(services, "keyed", contexts)
    await asyncio.sleep(1.5)
    cluster.kill_worker(0)
    await asyncio.sleep(1.0)
    cluster.restart_worker(0)
    await asyncio.sleep(1.0)
    cluster.restart_redis(down_seconds=1.0)
    await wait_complete(pg, "keyed", tasks, 180)
    return await keyed_figures(pg, tasks, time.monotonic() - started)


def most_in_window(starts: list[datetime], window: float) -> int:
    """The most starts in any half-open window [t, t + window) (it begins at some start)."""
    most, j = 0, 0
    for i, first in enumerate(starts):
        while j < len(starts) and (starts[j] - first).total_seconds() < window:
            j += 1
        most = max(most, j - i)
    return most


async def metered(pg: asyncpg.Connection, services: Any, tasks: int) -> dict[str, Any]:
    """Proof (b): one tenant, 10 starts a second."""
    await create(services, "metered", [{"tenant": "one", "sleep": 0.01}] * tasks)
    await wait_complete(pg, "metered", tasks, tasks / 10 + 60)
    starts: list[datetime] = [
        r["created_at"]
        for r in await pg.fetch(
            """SELECT tr.created_at FROM tasker_transitions tr
                 JOIN tasker_tasks t ON t.id = tr.task_id
                WHERE t.name = 'metered' AND tr.to_status = 'in_progress'
                  AND tr.step_id IS NOT NULL ORDER BY tr.created_at"""
        )
    ]
    span = (starts[-1] - starts[0]).total_seconds() if len(starts) > 1 else 0.0
    # n starts spaced over `span` seconds: n - 1 intervals.
    rate = (len(starts) - 1) / span if span else 0.0
    return {
        "starts": len(starts),
        "seconds from first to last start": round(span, 1),
        "most starts in any 1 s window (limit 10)": most_in_window(starts, 1.0),
        "achieved rate /s (>= 9 wanted)": round(rate, 2),
        **await invariants(pg),
    }


async def lanes(
    pg: asyncpg.Connection, services: Any, low: int, high: int, *, same_priority: bool
) -> dict[str, Any]:
    """Proof (c): `low` tasks at priority 1, then `high` at 3 (or at 1 too: the baseline)."""
    # 0.5 s steps on 2 x 2 threads: creating the backlog (a few seconds) is faster than
    # draining it, so it is still mostly queued in Redis when the late tasks arrive.
    await create(services, "lanes", [{"group": "low", "sleep": 0.5}] * low, priority=1)
    late = 1 if same_priority else 3
    await create(services, "lanes", [{"group": "high", "sleep": 0.5}] * high, priority=late)
    await wait_complete(pg, "lanes", low + high, 180)
    row = await pg.fetchrow(
        """SELECT (SELECT max(completed_at) FROM tasker_tasks
                    WHERE name = 'lanes' AND context->>'group' = 'high') AS high_done,
                  (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s.started_at)
                     FROM tasker_workflow_steps s JOIN tasker_tasks t ON t.id = s.task_id
                    WHERE t.name = 'lanes' AND t.context->>'group' = 'low') AS low_median,
                  (SELECT min(created_at) FROM tasker_tasks
                    WHERE name = 'lanes' AND context->>'group' = 'high') AS high_created"""
    )
    late_highs = await pg.fetchval(
        """SELECT count(*) FROM tasker_tasks
            WHERE name = 'lanes' AND context->>'group' = 'high' AND completed_at > $1""",
        row["low_median"],
    )
    lows_before = await pg.fetchval(
        """SELECT count(*) FROM tasker_workflow_steps s JOIN tasker_tasks t ON t.id = s.task_id
            WHERE t.name = 'lanes' AND t.context->>'group' = 'low' AND s.started_at < $1""",
        row["high_done"],
    )
    return {
        "late tasks' priority": late,
        "late tasks completed after the median backlog start": f"{late_highs}/{high}",
        "last late task done, s after the first was created": round(
            (row["high_done"] - row["high_created"]).total_seconds(), 2
        ),
        "backlog steps started before the last late task was done": f"{lows_before}/{low}",
        "pass": late_highs == 0,
    }


async def run_proof(which: str, workers: int, threads: int) -> dict[str, Any]:
    """Start a cluster, run one proof on it, stop it."""
    cluster = Cluster.start(
        database=DATABASE,
        reset=True,
        servers=0,
        workers=workers,
        threads=threads,
        ttl=600,
        extra_env=PROOF_ENV,
        redis_port=REDIS_PORT,
    )
    database_url = f"{PG_BASE}/{DATABASE}"
    services = await producer(database_url, cluster.state.broker_url)
    pg = await asyncpg.connect(database_url)
    try:
        await asyncio.sleep(2)  # the workers connect
        if which == "a":
            return await keyed(pg, services, 200, 10)
        if which == "faults":
            return await keyed_faults(cluster, pg, services, 200, 10)
        if which == "b":
            return await metered(pg, services, 300)
        if which == "c0":
            return await lanes(pg, services, 300, 20, same_priority=True)
        return await lanes(pg, services, 300, 20, same_priority=False)
    finally:
        await pg.close()
        await services.close()
        cluster.stop()


PROOFS = {  # title, worker processes, threads each (None: --threads)
    "a": ("(a) step limit 2/key, 200 tasks x 10 keys, 3 workers", 3, None),
    "faults": ("(a') the same with kill -9 of a worker and a Redis restart", 3, None),
    "b": ("(b) rate limit 10/s on one key, 300 tasks, 3 workers", 3, None),
    "c0": ("(c) baseline: 300 tasks, then 20 more at the SAME priority, 2 workers x 2", 2, 2),
    "c": ("(c) 300 tasks at priority 1, then 20 at priority 3, 2 workers x 2 threads", 2, 2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(PROOFS), action="append")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    for which in args.only or list(PROOFS):
        title, workers, threads = PROOFS[which]
        print(f"\n{title}", flush=True)
        figures = asyncio.run(run_proof(which, workers, threads or args.threads))
        for label, value in figures.items():
            print(f"  {label}: {value}", flush=True)


if __name__ == "__main__":
    main()
