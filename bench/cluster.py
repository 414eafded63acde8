"""The production topology on one machine, started and stopped by one script.

PostgreSQL (the shared server on 127.0.0.1:5432, our own database) and a PRIVATE redis-server
on a free loopback port (so it may be restarted at will), 2 `tasker serve` processes on their
own ports, 3 `tasker worker` processes. Every pid is recorded in bench/out/pids.json together
with a log of what was killed and restarted, and a detached watchdog stops everything after
`--ttl` seconds so nothing outlives the run.

    .venv/bin/python -m bench.cluster start --database tasker_cluster --reset --ttl 1800
    .venv/bin/python -m bench.cluster status
    .venv/bin/python -m bench.cluster stop

`Cluster` is also what bench.load uses to inject faults (kill -9 a worker, restart Redis,
kill and restart a server).
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PIDS = OUT / "pids.json"
LOGS = OUT / "logs"
TASKER = str(Path(sys.executable).parent / "tasker")
PG_BASE = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
CODE = OUT / "code"
# What the processes import. Copied at start, so that edits to the working tree during a run
# (other people work in it) never reach a worker restarted by a fault.
SNAPSHOT = (
    "server",
    "workers",
    "graphql_schema",
    "rest_compat",
    "tests/__init__.py",
    "tests/support",
    "tests/fixtures/workflows",
)

# The cluster's configuration: production defaults except where a 10-minute run needs shorter
# waits (a kill -9'd step is re-run after its lease: timeout + grace).
CLUSTER_ENV = {
    "TASKER_EXAMPLES": "true",
    "TASKER_LOG_LEVEL": "WARNING",
    "TASKER_DEFAULT_STEP_TIMEOUT": "10",
    "TASKER_LEASE_GRACE_SECONDS": "5",
    "TASKER_DB_POOL_MAX": "8",
}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int | None) -> bool:
    """True if the process exists and is not a zombie."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_port(port: int, timeout: float = 30.0) -> bool:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def wait_http(url: str, timeout: float = 60.0) -> bool:
    """Wait until GET url answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


@dataclass
class Proc:
    """One process of the cluster."""

    role: str
    index: int
    pid: int
    port: int | None = None
    log: str = ""
    started_at: float = field(default_factory=time.time)


@dataclass
class State:
    """What bench/out/pids.json holds."""

    database_url: str
    broker_url: str
    redis: Proc
    servers: list[Proc]
    workers: list[Proc]
    threads: int
    env: dict[str, str]
    code: str = str(ROOT)
    code_digest: str = ""
    watchdog_pid: int | None = None
    deadline: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls) -> "State":
        raw = json.loads(PIDS.read_text())
        return cls(
            **{
                **raw,
                "redis": Proc(**raw["redis"]),
                "servers": [Proc(**p) for p in raw["servers"]],
                "workers": [Proc(**p) for p in raw["workers"]],
            }
        )

    def save(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = PIDS.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(PIDS)


class Cluster:
    """Starts, stops and disturbs the processes recorded in bench/out/pids.json."""

    def __init__(self, state: State) -> None:
        self.state = state

    # -- start ------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        database: str,
        reset: bool,
        servers: int,
        workers: int,
        threads: int,
        ttl: float,
        extra_env: dict[str, str] | None = None,
        snapshot: bool = True,
        redis_port: int | None = None,
    ) -> "Cluster":
        if PIDS.exists():
            old = State.load()
            if any(alive(p.pid) for p in [old.redis, *old.servers, *old.workers]):
                raise SystemExit("a cluster is already running (bench.cluster stop first)")
        LOGS.mkdir(parents=True, exist_ok=True)
        database_url = f"{PG_BASE}/{database}"
        port = redis_port or free_port()
        env = {**CLUSTER_ENV, **(extra_env or {})}
        state = State(
            database_url=database_url,
            broker_url=f"redis://127.0.0.1:{port}/0",
            redis=Proc("redis", 0, 0, port),
            servers=[],
            workers=[],
            threads=threads,
            env=env,
            deadline=time.time() + ttl,
        )
        cluster = cls(state)
        if snapshot:
            state.code, state.code_digest = str(CODE), take_snapshot(CODE)
        cluster._prepare_database(database, reset)
        cluster.start_redis()
        for i in range(servers):
            state.servers.append(cluster._spawn_server(i, free_port()))
        for i in range(workers):
            state.workers.append(cluster._spawn_worker(i))
        state.save()
        for proc in state.servers:
            if not wait_http(f"http://127.0.0.1:{proc.port}/tasker/health/live"):
                cluster.stop()
                raise SystemExit(f"server {proc.index} did not come up; see {proc.log}")
        state.watchdog_pid = subprocess.Popen(
            [sys.executable, "-m", "bench.cluster", "watchdog"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ).pid
        cluster.note("started")
        return cluster

    def process_env(self) -> dict[str, str]:
        """The environment of every tasker process: ours, none of the caller's TASKER_*."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
        return {
            **base,
            "TASKER_HANDLERS_PATH": str(Path(self.state.code) / "tests" / "fixtures" / "workflows"),
            **self.state.env,
            "PYTHONPATH": self.state.code,
            "TASKER_DATABASE_URL": self.state.database_url,
            "TASKER_BROKER_URL": self.state.broker_url,
        }

    def _prepare_database(self, database: str, reset: bool) -> None:
        def psql(sql: str) -> str:
            return subprocess.run(
                ["psql", f"{PG_BASE}/postgres", "-tAc", sql],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()

        exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'") == "1"
        if exists and reset:
            psql(f'DROP DATABASE "{database}" WITH (FORCE)')
            exists = False
        if not exists:
            psql(f'CREATE DATABASE "{database}"')
        subprocess.run(
            [TASKER, "migrate"],
            cwd=self.state.code,
            env=self.process_env(),
            check=True,
            capture_output=True,
        )

    def _spawn(self, role: str, index: int, argv: list[str], port: int | None = None) -> Proc:
        log = LOGS / f"{role}-{index}.log"
        with open(log, "ab") as fh:
            fh.write(f"\n=== {time.strftime('%H:%M:%S')} start {' '.join(argv)}\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                argv,
                cwd=self.state.code,
                env=self.process_env(),
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our own process group: `stop` ends it and its children
            )
        return Proc(role, index, proc.pid, port, str(log))

    def _spawn_server(self, index: int, port: int) -> Proc:
        argv = [TASKER, "serve", "--host", "127.0.0.1", "--port", str(port)]
        return self._spawn("server", index, argv, port)

    def _spawn_worker(self, index: int) -> Proc:
        argv = [TASKER, "worker", "--threads", str(self.state.threads)]
        return self._spawn("worker", index, argv)

    def start_redis(self) -> None:
        """Start (or restart) the private redis-server on the recorded port."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server is not installed")
        port = self.state.redis.port
        assert port is not None
        argv = [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(OUT),
            "--maxmemory-policy",
            "noeviction",
        ]
        self.state.redis = self._spawn("redis", 0, argv, port)
        if not wait_port(port):
            raise SystemExit("private redis did not start")

    # -- faults -----------------------------------------------------------------------------

    def note(self, what: str, **details: Any) -> None:
        """Append to the event log in pids.json."""
        self.state.events.append({"at": time.time(), "what": what, **details})
        self.state.save()

    def kill_worker(self, index: int) -> int:
        """kill -9 worker `index`; returns its pid."""
        proc = self.state.workers[index]
        _signal_group(proc.pid, signal.SIGKILL)
        _reap(proc.pid)
        self.note("kill -9 worker", index=index, pid=proc.pid)
        return proc.pid

    def restart_worker(self, index: int) -> int:
        """Start worker `index` again (after it died); returns the new pid."""
        self.state.workers[index] = self._spawn_worker(index)
        self.note("start worker", index=index, pid=self.state.workers[index].pid)
        return self.state.workers[index].pid

    def kill_server(self, index: int) -> int:
        """kill -9 server `index`; returns its pid."""
        proc = self.state.servers[index]
        _signal_group(proc.pid, signal.SIGKILL)
        _reap(proc.pid)
        self.note("kill -9 server", index=index, pid=proc.pid)
        return proc.pid

    def restart_server(self, index: int, wait: bool = True) -> int:
        """Start server `index` again on its port; returns the new pid."""
        port = self.state.servers[index].port
        assert port is not None
        self.state.servers[index] = self._spawn_server(index, port)
        if wait:
            wait_http(f"http://127.0.0.1:{port}/tasker/health/live")
        self.note("start server", index=index, pid=self.state.servers[index].pid, port=port)
        return self.state.servers[index].pid

    def restart_redis(self, down_seconds: float = 1.0) -> None:
        """Stop the private Redis (losing every queued message), then start it again."""
        old = self.state.redis.pid
        _signal_group(old, signal.SIGTERM)
        _reap(old)
        self.note("stop redis", pid=old)
        time.sleep(down_seconds)
        self.start_redis()
        self.note("start redis", pid=self.state.redis.pid)

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM servers and workers (SIGKILL after 15 s), then Redis and the watchdog."""
        procs = [*self.state.servers, *self.state.workers]
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p.pid) for p in procs):
            time.sleep(0.1)
        for proc in procs:
            if alive(proc.pid):
                _signal_group(proc.pid, signal.SIGKILL)
        _signal_group(self.state.redis.pid, signal.SIGTERM)
        for proc in [*procs, self.state.redis]:
            _reap(proc.pid)
        self.note("stopped")
        watchdog = self.state.watchdog_pid
        if watchdog and watchdog != os.getpid() and alive(watchdog):
            os.kill(watchdog, signal.SIGTERM)

    def status(self) -> list[tuple[Proc, bool]]:
        """Every recorded process and whether it is alive."""
        return [
            (p, alive(p.pid)) for p in [self.state.redis, *self.state.servers, *self.state.workers]
        ]

    @property
    def server_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p.port}" for p in self.state.servers]


def take_snapshot(dest: Path) -> str:
    """Copy the code the processes run to `dest`; returns git HEAD plus a digest of the copy."""
    if dest.exists():
        shutil.rmtree(dest)
    digest = hashlib.sha256()
    for item in SNAPSHOT:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    for path in sorted(dest.rglob("*.py")) + sorted(dest.rglob("*.yaml")):
        digest.update(path.relative_to(dest).as_posix().encode())
        digest.update(path.read_bytes())
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"{head}+{digest.hexdigest()[:12]}"


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group we started (a server or worker and any children)."""
    if not pid:
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int, timeout: float = 10.0) -> None:
    """Wait for a process to go (reaping it when it is our child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not alive(pid):
                return
        time.sleep(0.02)


def _watchdog() -> None:
    """Stop the cluster at its deadline (or leave when someone else stopped it)."""
    while True:
        try:
            state = State.load()
        except (OSError, ValueError):
            return
        if state.events and state.events[-1]["what"] == "stopped":
            return
        if time.time() >= state.deadline:
            Cluster(state).stop()
            return
        time.sleep(min(5.0, max(0.1, state.deadline - time.time())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start")
    start.add_argument("--database", default="tasker_cluster")
    start.add_argument("--reset", action="store_true", help="drop and recreate the database")
    start.add_argument("--servers", type=int, default=2)
    start.add_argument("--workers", type=int, default=3)
    start.add_argument("--threads", type=int, default=8)
    start.add_argument("--ttl", type=float, default=1800, help="watchdog stops it after this")
    start.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    start.add_argument(
        "--live-code",
        action="store_true",
        help="run the working tree itself instead of a snapshot of it",
    )
    sub.add_parser("stop")
    sub.add_parser("status")
    sub.add_parser("watchdog")
    args = parser.parse_args()
    if args.command == "start":
        extra = dict(item.split("=", 1) for item in args.env)
        cluster = Cluster.start(
            database=args.database,
            reset=args.reset,
            servers=args.servers,
            workers=args.workers,
            threads=args.threads,
            ttl=args.ttl,
            extra_env=extra,
            snapshot=not args.live_code,
        )
        for proc, ok in cluster.status():
            print(
                f"{proc.role}-{proc.index} pid {proc.pid} port {proc.port or '-'} "
                f"{'up' if ok else 'DOWN'}"
            )
        print(f"pids: {PIDS}; code {cluster.state.code} ({cluster.state.code_digest})")
    elif args.command == "watchdog":
        _watchdog()
    else:
        if not PIDS.exists():
            raise SystemExit("no cluster recorded")
        cluster = Cluster(State.load())
        if args.command == "stop":
            cluster.stop()
            print("stopped")
        else:
            for proc, ok in cluster.status():
                print(
                    f"{proc.role}-{proc.index} pid {proc.pid} port {proc.port or '-'} "
                    f"{'up' if ok else 'DOWN'}"
                )


if __name__ == "__main__":
    main()
