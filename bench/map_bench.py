"""Map benchmark: a map step's items/s next to the same number of plain steps/s, same run.

Both run on one embedded engine (in-process Dramatiq workers, the sweeper) over the same
database, so the figures compare like with like: N items of one `map_over` step
(`max_parallel` 50) against N plain steps (N/4 tasks of the 4-step `bench.chain`).

    .venv/bin/python -m bench.map_bench --items 10000
    .venv/bin/python -m bench.map_bench --items 10000 \
        --database-url postgres://postgres@127.0.0.1:5432/tasker_map_bench
"""

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from uuid import UUID

from server.config import Settings
from server.container import Services, build_services
from server.domain.states import TaskState
from server.domain.views import CreateTask
from server.infra.ports import NullDispatcher
from server.registry.handler_registry import HandlerRegistry
from workers.pool import WorkerPool
from workers.runtime import LoopRuntime

HERE = Path(__file__).resolve().parent
FINAL = {TaskState.COMPLETE, TaskState.ERROR, TaskState.CANCELLED}


async def wait_all(services: Services, ids: list[UUID], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} tasks not finished in {timeout}s")
        still = []
        for task_id in pending:
            task = await services.tasks.get_task(task_id)
            if task.status not in FINAL:
                still.append(task_id)
            elif task.status is not TaskState.COMPLETE:
                raise SystemExit(f"task {task_id} ended {task.status.value}")
        pending = still
        if pending:
            await asyncio.sleep(0.05)


async def run(items: int, database_url: str, threads: int, timeout: float) -> dict[str, float]:
    registry = HandlerRegistry.load([HERE / "handlers", HERE / "map_handlers"], examples=False)
    settings = Settings(database_url=database_url, embedded_worker_threads=threads)
    services = build_services(settings, NullDispatcher(), registry=registry)
    await services.open()
    pool = WorkerPool(services, LoopRuntime(asyncio.get_running_loop()), threads=threads)
    pool.start_consuming()
    pool.start_background()
    try:
        started = time.perf_counter()
        view, _ = await services.tasks.create_task(
            CreateTask(
                namespace="bench_map", name="map_noop", context={"items": list(range(items))}
            )
        )
        await wait_all(services, [view.id], timeout)
        map_seconds = time.perf_counter() - started
        started = time.perf_counter()
        ids = []
        for _ in range(items // 4):
            task, _ = await services.tasks.create_task(
                CreateTask(namespace="bench", name="chain", context={})
            )
            ids.append(task.id)
        await wait_all(services, ids, timeout)
        steps_seconds = time.perf_counter() - started
    finally:
        await pool.stop_background()
        await asyncio.to_thread(pool.stop_consuming)
        await services.close()
    return {
        "items": items,
        "map_seconds": map_seconds,
        "items_per_s": items / map_seconds,
        "steps": (items // 4) * 4,
        "steps_seconds": steps_seconds,
        "steps_per_s": (items // 4) * 4 / steps_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite://{tmp}/map_bench.db"
        figures = asyncio.run(run(args.items, url, args.threads, args.timeout))
    backend = "postgres" if url.startswith("postgres") else "sqlite"
    print(
        f"{backend}: {figures['items']} map items in {figures['map_seconds']:.1f}s = "
        f"{figures['items_per_s']:.0f} items/s; {figures['steps']} plain steps in "
        f"{figures['steps_seconds']:.1f}s = {figures['steps_per_s']:.0f} steps/s"
    )


if __name__ == "__main__":
    main()
