"""`tasker worker`: N worker processes, each with T Dramatiq threads on one database loop, and
one Prometheus endpoint for all of them (`workers.metrics`)."""

import logging
import multiprocessing
import signal
import threading

from server.config import Settings
from server.container import build_services
from server.infra.gc_tuning import freeze_startup_objects
from server.infra.ports import NullDispatcher
from workers.metrics import serve_metrics, share_across_processes
from workers.pool import WorkerPool
from workers.runtime import LoopRuntime

log = logging.getLogger(__name__)


def run_workers(settings: Settings, *, processes: int, threads: int) -> int:
    """Run the workers until SIGTERM/SIGINT; returns an exit code."""
    if processes <= 1:
        return _serve_one(settings, threads, serve=True)
    port = settings.worker_metrics_port
    clean = share_across_processes() if port else (lambda: None)
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=_serve_one, args=(settings, threads), name=f"tasker-worker-{i}")
        for i in range(processes)
    ]
    for child in children:
        child.start()
    # The supervisor serves the sum of its children's values (they write them to the shared
    # directory), so one scrape per host sees every process, restarted ones included.
    stop_metrics = serve_metrics(port, settings.worker_metrics_host)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.is_alive() and child.pid:
                child.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        for child in children:
            child.join()
    finally:
        stop_metrics()
        clean()
    return max((c.exitcode or 0) for c in children)


def _serve_one(settings: Settings, threads: int, *, serve: bool = False) -> int:
    """One worker process; `serve`: with its own metrics endpoint (a single process)."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    services = build_services(settings, NullDispatcher())
    runtime = LoopRuntime.in_new_thread()
    runtime.run(services.open())
    pool = WorkerPool(services, runtime, threads=threads)
    if settings.freeze_heap:
        freeze_startup_objects()
    stop_metrics = (
        serve_metrics(settings.worker_metrics_port, settings.worker_metrics_host)
        if serve
        else (lambda: None)
    )
    runtime.run(pool.heartbeat())
    pool.start_consuming()
    pool.start_background()
    log.info("worker %s consuming with %d threads", services.worker_id, threads)
    stop.wait()
    log.info("worker %s stopping", services.worker_id)
    pool.stop_consuming()
    runtime.run(pool.stop_background())
    runtime.run(services.close())
    runtime.stop()
    stop_metrics()
    return 0
