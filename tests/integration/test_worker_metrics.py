"""`tasker worker` serves its own Prometheus metrics: what its processes counted (step
executions, durations, finished tasks), scraped from the worker itself, one endpoint per host.

Real worker processes on PostgreSQL and Redis (the PostgreSQL pass, as test_production.py);
the page is read with prometheus_client's own text parser.
"""

import asyncio
import subprocess
import time

import httpx
import pytest

from server.db.models import Transition
from server.domain.states import TaskState
from server.domain.views import CreateTask
from server.engine.store import lease_holder
from tests.conftest import REDIS_URL
from tests.integration.test_production import _producer
from tests.support.cluster import ROOT, TASKER, WorkerProcesses, free_port
from tests.support.production import PRODUCTION_ONLY, metric_total
from tests.support.waiting import wait_for_task

pytestmark = PRODUCTION_ONLY


@pytest.fixture
async def producer(database_url, broker_url, registry):
    services = await _producer(database_url, broker_url, registry)
    try:
        yield services
    finally:
        await services.close()


def start_worker(workers: WorkerProcesses, log_name: str, *args: str) -> subprocess.Popen[bytes]:
    with open(workers.log_dir / log_name, "wb") as log:
        proc = subprocess.Popen(
            [TASKER, "worker", *args],
            cwd=ROOT,
            env=workers.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    workers.procs.append(proc)
    return proc


async def scrape(port: int, workers: WorkerProcesses) -> str:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            try:
                answer = await client.get(f"http://127.0.0.1:{port}/metrics")
                assert answer.status_code == 200
                return answer.text
            except httpx.TransportError:
                assert time.monotonic() < deadline, workers.logs()
                await asyncio.sleep(0.1)


async def run_tasks(producer, count: int, sleep: float = 0) -> None:
    tasks = []
    for _ in range(count):
        task, _ = await producer.tasks.create_task(
            CreateTask(namespace="shapes", name="linear", context={"sleep": sleep})
        )
        tasks.append(task)
    for task in tasks:
        assert (await wait_for_task(producer, task.id, timeout=60)).status is TaskState.COMPLETE


async def test_a_worker_serves_the_completions_and_step_durations_it_counted(producer, tmp_path):
    workers = WorkerProcesses(producer.settings.database_url, REDIS_URL or "", tmp_path)
    port = free_port()
    try:
        start_worker(workers, "worker.log", "--threads", "2", "--metrics-port", str(port))
        await scrape(port, workers)  # serving before any step ran
        await run_tasks(producer, 1)
        text = await scrape(port, workers)
    finally:
        workers.stop()
    # The four steps of `linear` and the task's completion, all counted in the worker.
    executions = metric_total(
        text, "tasker_step_executions_total", namespace="shapes", outcome="complete"
    )
    assert executions == 4, text
    assert metric_total(text, "tasker_tasks_completed_total", namespace="shapes") == 1, text
    assert metric_total(text, "tasker_step_duration_seconds_count", namespace="shapes") == 4, text
    assert metric_total(text, "tasker_step_duration_seconds_bucket", le="+Inf") == 4, text
    # The deployment's gauges are the server's to serve, not each worker host's.
    assert "tasker_live_workers" not in text


async def test_several_processes_are_summed_on_one_port_set_by_environment(producer, tmp_path):
    workers = WorkerProcesses(producer.settings.database_url, REDIS_URL or "", tmp_path)
    port = free_port()
    workers.env["TASKER_WORKER_METRICS_PORT"] = str(port)
    try:
        start_worker(workers, "workers.log", "--processes", "2", "--threads", "2")
        await scrape(port, workers)
        await run_tasks(producer, 20, sleep=0.05)
        text = await scrape(port, workers)
        claims = await Transition.filter(reason="claimed").values_list("metadata", flat=True)
    finally:
        workers.stop()
    # Both processes ran steps (each claim names its worker), and one page has them all.
    assert len({lease_holder(c["worker"]) for c in claims}) == 2, claims  # leases on PostgreSQL
    executions = metric_total(
        text, "tasker_step_executions_total", namespace="shapes", outcome="complete"
    )
    assert executions == 80, text
    assert metric_total(text, "tasker_tasks_completed_total", namespace="shapes") == 20, text
    assert metric_total(text, "tasker_step_duration_seconds_count", namespace="shapes") == 80, text
