"""Soak: steady load for a long time, sampling every process's memory and connections.

Against a running bench.cluster: tasks arrive at a fixed rate (open loop, half REST half
GraphQL, round-robin over the servers, the bench.load mix), 1 in `--follow-every` followed over
a GraphQL subscription. Every `--interval` seconds it samples, for each server and worker
process, resident memory (VmRSS), open file descriptors and TCP connections to PostgreSQL and
to Redis, plus PostgreSQL's own count of connections to the database and the backlog.

At the end it compares the median of the minute after warm-up with the median of the last
minute and fails any figure that grew more than `--max-growth` (10 %).

    .venv/bin/python -m bench.soak --rate 20 --duration 1800
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.cluster import OUT, Cluster, State, alive
from bench.load import Load, Servers, Subscriber, plan, step_names

TERMINAL = ["complete", "error", "cancelled", "resolved_manually"]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _socket_inodes(pid: int) -> tuple[int, set[str]]:
    fds = 0
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        fds += 1
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return fds, inodes


def _tcp_by_inode() -> dict[str, int]:
    """inode -> remote port, for every established TCP connection on the machine."""
    out: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] != "01":  # ESTABLISHED
                continue
            out[parts[9]] = int(parts[2].rsplit(":", 1)[1], 16)
    return out


def sample_process(pid: int, tcp: dict[str, int], pg_port: int, redis_port: int) -> dict[str, int]:
    fds, inodes = _socket_inodes(pid)
    ports = [tcp[i] for i in inodes if i in tcp]
    return {
        "rss_kb": rss_kb(pid),
        "fds": fds,
        "pg_conns": sum(p == pg_port for p in ports),
        "redis_conns": sum(p == redis_port for p in ports),
    }


class Soak:
    def __init__(
        self, cluster: Cluster, rate: float, duration: float, follow_every: int, interval: float
    ) -> None:
        self.cluster = cluster
        self.rate = rate
        self.duration = duration
        self.follow_every = follow_every
        self.interval = interval
        self.deadline = time.monotonic() + duration
        self.load = Load(cluster, [], 32, self.deadline + 120)
        self.samples: list[dict[str, Any]] = []
        self.sent = 0
        self.failed = 0
        self.latencies: list[float] = []
        self.in_flight = 0

    async def arrivals(self, specs_steps: dict[tuple[str, str], list[str]]) -> None:
        """Open loop: one task every 1/rate s, at most 64 requests in flight."""
        total = int(self.rate * self.duration) + 1
        specs = plan(total, 0, self.follow_every, 0, 11, specs_steps)
        servers = Servers(self.cluster.server_urls)
        subscriber = Subscriber(Servers(self.cluster.server_urls))
        sub_task = asyncio.create_task(subscriber.run(self.deadline + 60))
        gate = asyncio.Semaphore(64)
        began = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:

            async def one(n: int) -> None:
                spec = specs[n]
                async with gate:
                    self.in_flight += 1
                    t0 = time.perf_counter()
                    try:
                        if n % 2:
                            task_id, _, _ = await self.load.create_graphql(http, servers, spec)
                            if spec.follow:
                                await subscriber.add(task_id)
                        else:
                            await self.load.create_rest(http, servers, spec)
                        self.latencies.append((time.perf_counter() - t0) * 1000)
                    except Exception:
                        self.failed += 1
                    finally:
                        self.in_flight -= 1

            n = 0
            while time.monotonic() < self.deadline and n < total:
                due = began + n / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(n))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
                self.sent = n
            await asyncio.gather(*pending)
        subscriber.closing = True
        grace = time.monotonic() + 60
        while subscriber.pending() and time.monotonic() < grace:
            await asyncio.sleep(0.5)
        sub_task.cancel()
        self.follows = list(subscriber.follows.values())

    async def sampler(self) -> None:
        state = self.cluster.state
        redis_port = int(state.broker_url.rsplit(":", 1)[1].split("/")[0])
        pg = await asyncpg.connect(state.database_url)
        began = time.monotonic()
        try:
            while time.monotonic() < self.deadline:
                tcp = _tcp_by_inode()
                procs = {}
                for proc in [*state.servers, *state.workers]:
                    if alive(proc.pid):
                        procs[f"{proc.role}-{proc.index}"] = sample_process(
                            proc.pid, tcp, 5432, redis_port
                        )
                row = await pg.fetchrow(
                    """SELECT (SELECT count(*) FROM pg_stat_activity
                                WHERE datname = current_database()) AS pg_backends,
                              (SELECT count(*) FROM tasker_tasks
                                WHERE status IN ('pending', 'in_progress')) AS active_tasks,
                              (SELECT count(*) FROM tasker_tasks
                                WHERE status = ANY($1::text[])) AS finished_tasks""",
                    TERMINAL,
                )
                sample = {
                    "t": round(time.monotonic() - began, 1),
                    "procs": procs,
                    "sent": self.sent,
                    "failed": self.failed,
                    "in_flight": self.in_flight,
                    **dict(row),
                }
                self.samples.append(sample)
                rss = " ".join(
                    f"{k}:{v['rss_kb'] // 1024}M/{v['pg_conns']}pg/{v['redis_conns']}r"
                    for k, v in procs.items()
                )
                print(
                    f"  {sample['t']:7.0f}s sent {self.sent:>6} active "
                    f"{row['active_tasks']:>4} done {row['finished_tasks']:>6} "
                    f"backends {row['pg_backends']:>3} | {rss}",
                    flush=True,
                )
                await asyncio.sleep(self.interval - (time.monotonic() - began) % self.interval)
        finally:
            await pg.close()

    async def run(self) -> None:
        specs_steps = await step_names(self.cluster.server_urls)
        await asyncio.gather(self.arrivals(specs_steps), self.sampler())


def growth_report(
    samples: list[dict[str, Any]], warmup: float, window: float, max_growth: float
) -> tuple[list[str], bool]:
    """Median of [warmup, warmup+window) against the median of the last `window` seconds."""
    end = samples[-1]["t"]
    early = [s for s in samples if warmup <= s["t"] < warmup + window]
    late = [s for s in samples if s["t"] > end - window]
    lines, ok = [], True
    if not early or not late or early[0]["t"] >= late[0]["t"]:
        return ["run too short for a growth comparison"], True
    names = sorted(set(early[-1]["procs"]) & set(late[-1]["procs"]))
    for name in names:
        for key in ("rss_kb", "fds", "pg_conns", "redis_conns"):
            a = statistics.median(s["procs"][name][key] for s in early if name in s["procs"])
            b = statistics.median(s["procs"][name][key] for s in late if name in s["procs"])
            grew = (b - a) / a if a else (0.0 if b == 0 else float("inf"))
            bad = grew > max_growth
            # Small counts move by whole connections: one more of 4 is not a trend.
            if key != "rss_kb" and b - a <= 1:
                bad = False
            ok &= not bad
            unit = "MB" if key == "rss_kb" else ""
            scale = 1024 if key == "rss_kb" else 1
            lines.append(
                f"  {'FAIL' if bad else 'ok  '} {name:<9} {key:<12} "
                f"{a / scale:8.1f}{unit} -> {b / scale:8.1f}{unit} ({grew * 100:+.1f} %)"
            )
    for key in ("pg_backends", "active_tasks"):
        a = statistics.median(s[key] for s in early)
        b = statistics.median(s[key] for s in late)
        grew = (b - a) / a if a else 0.0
        bad = key == "pg_backends" and grew > max_growth and b - a > 1
        ok &= not bad
        lines.append(
            f"  {'FAIL' if bad else 'ok  '} {'database':<9} {key:<12} "
            f"{a:8.1f} -> {b:8.1f} ({grew * 100:+.1f} %)"
        )
    return lines, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, required=True, help="tasks per second")
    parser.add_argument("--duration", type=float, default=1800)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=300)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--max-growth", type=float, default=0.10)
    parser.add_argument("--follow-every", type=int, default=10)
    parser.add_argument("--out", type=Path, default=OUT / "soak.json")
    args = parser.parse_args()
    cluster = Cluster(State.load())
    soak = Soak(cluster, args.rate, args.duration, args.follow_every, args.interval)
    started = time.time()
    asyncio.run(soak.run())
    follows = getattr(soak, "follows", [])
    lat = sorted(soak.latencies) or [0.0]
    lines, ok = growth_report(soak.samples, args.warmup, args.window, args.max_growth)
    missed = sum(not f.completed for f in follows)
    summary = {
        "rate": args.rate,
        "duration": args.duration,
        "sent": soak.sent,
        "failed_creates": soak.failed,
        "create_ms_p50": statistics.median(lat),
        "create_ms_p99": lat[int(len(lat) * 0.99)],
        "follows": len(follows),
        "follows_missing_final": missed,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"started_at": started, "summary": summary, "report": lines, "samples": soak.samples},
            indent=1,
        )
    )
    print(json.dumps(summary))
    print(
        f"growth, median of minute {args.warmup / 60:.0f}-{(args.warmup + args.window) / 60:.0f}"
        f" vs the last minute (limit {args.max_growth * 100:.0f} %):"
    )
    print("\n".join(lines))
    ok &= soak.failed == 0 and missed == 0
    print("SOAK:", "PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
