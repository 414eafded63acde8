"""Real `tasker worker` processes (and a private Redis) for the production-mode tests."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASKER = str(Path(sys.executable).parent / "tasker")

FAST_ENV = {
    "TASKER_SWEEP_INTERVAL": "0.2",
    "TASKER_REDISPATCH_AFTER": "1",
    "TASKER_HEARTBEAT_INTERVAL": "0.5",
    "TASKER_BACKOFF_BASE_SECONDS": "0.05",
    "TASKER_BACKOFF_MAX_SECONDS": "0.5",
    "TASKER_LEASE_GRACE_SECONDS": "0.5",
    "TASKER_DEFAULT_STEP_TIMEOUT": "3",
    "TASKER_HANDLERS_PATH": str(ROOT / "tests" / "fixtures" / "workflows"),
    "TASKER_EXAMPLES": "true",
    # Many workers start at once in a test run: none takes the default metrics port.
    "TASKER_WORKER_METRICS_PORT": "0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcesses:
    """Starts and stops `tasker worker` processes against one database and broker."""

    def __init__(self, database_url: str, broker_url: str, log_dir: Path) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TASKER_")},
            **FAST_ENV,
            "TASKER_DATABASE_URL": database_url,
            "TASKER_BROKER_URL": broker_url,
            # The test handlers live in `tests.support.steps`, as users' handlers live in
            # their own packages: importable from the worker's path.
            "PYTHONPATH": str(ROOT),
        }
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1, threads: int = 4) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(count):
            with open(self.log_dir / f"worker-{len(self.procs)}.log", "wb") as log:
                proc = subprocess.Popen(
                    [TASKER, "worker", "--threads", str(threads)],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.procs.append(proc)
            started.append(proc)
        return started

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))


class PrivateRedis:
    """A redis-server of our own on a free port, so a test may restart it at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
