"""One scrape of the server's /metrics shows what separate `tasker worker` processes counted.

Production topology: `tasker serve` (broker mode, no embedded workers) and a `tasker worker`,
both with PROMETHEUS_MULTIPROC_DIR pointing at one fresh directory. Steps only ever run in the
worker, so step counters on the server's page prove the per-process files are aggregated.
Needs PostgreSQL and Redis (TASKER_TEST_BACKEND=postgres, TASKER_TEST_REDIS_URL).
"""

import socket
import subprocess
import time

import httpx

from tests.conftest import REDIS_URL
from tests.support.cluster import ROOT, TASKER, WorkerProcesses, free_port
from tests.support.production import PRODUCTION_ONLY, metric_total

pytestmark = PRODUCTION_ONLY


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_worker_process_metrics_appear_on_the_server_scrape(database_url, tmp_path):
    assert REDIS_URL
    prom = tmp_path / "prometheus"
    prom.mkdir()
    workers = WorkerProcesses(database_url, REDIS_URL, tmp_path)
    workers.env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [TASKER, "serve", "--port", str(port)],
        cwd=ROOT,
        env=workers.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await client.get("/tasker/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
            workers.start(1, threads=2)
            created = await client.post(
                "/tasker/tasks",
                json={
                    "namespace": "shapes",
                    "name": "linear",
                    "context": {"sleep": 0},
                },
            )
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            while (await client.get(f"/tasker/tasks/{task_id}")).json()["status"] != "complete":
                assert time.monotonic() < deadline + 30, workers.logs()
                time.sleep(0.1)
            text = (await client.get("/tasker/metrics")).text
        # Counted by the worker process (it ran all four steps and finished the task) ...
        assert (
            metric_total(
                text, "tasker_step_executions_total", namespace="shapes", outcome="complete"
            )
            == 4
        ), text
        assert metric_total(text, "tasker_tasks_completed_total", namespace="shapes") == 1
        assert metric_total(text, "tasker_step_duration_seconds_count", namespace="shapes") == 4
        # ... and by the server process (it created the task), on the same page.
        assert metric_total(text, "tasker_tasks_created_total", namespace="shapes") == 1
        assert metric_total(text, "tasker_live_workers") >= 1
        assert len(list(prom.glob("*.db"))) >= 2  # one file set per process
        assert not listening(9191), "dramatiq's own metrics server must stay off"
    finally:
        workers.stop()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
