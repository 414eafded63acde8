"""GraphQL validation under attack: /tasker/health/live latency while two clients send documents
built to make graphql-core's validation quadratic (fields sharing one response name).

Starts `uvicorn --factory server.app:create_app` (one worker process, embedded mode, a fresh
SQLite file, auth on with an HS256 secret, default settings otherwise: health status and
analytics need no token, so documents from anyone are parsed). Then, for each scenario, one
probe measures GET /tasker/health/live back to back for `--seconds`:

- idle: nothing else runs;
- attack, no token: two clients POST the attack documents with no Authorization header;
- attack, valid token: the same with a token holding every permission.

The attack documents (from the report that found the problem), each with a random comment so
no cache helps: `{ a:__typename a:health{status} ... }` and
`{ a:namespaces{b:name} a:namespaces{b:description} ... }` (~600 fields each), the unaliased
`{ namespaces{name} namespaces{description} ... }`, and 300 fragments selecting the same field.

    .venv/bin/python -m bench.graphql_dos --seconds 10
    .venv/bin/python -m bench.graphql_dos --strict   # nothing open to anonymous callers
    .venv/bin/python -m bench.graphql_dos --root /tmp/old-tree   # another checkout's code
"""

import argparse
import asyncio
import itertools
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jwt

from bench.graphql_bench import free_port, pct, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
SECRET = secrets.token_urlsafe(48)

ATTACKS = [
    "{ " + " ".join("a:__typename a:health{status}" for _ in range(300)) + " }",
    "{ " + " ".join("a:namespaces{b:name} a:namespaces{b:description}" for _ in range(300)) + " }",
    "{ " + "namespaces{name} namespaces{description} " * 300 + "}",
    "{ "
    + " ".join(f"...F{i}" for i in range(300))
    + " } "
    + " ".join(f"fragment F{i} on Query {{ namespaces {{ name }} }}" for i in range(300)),
]


def token() -> str:
    now = int(time.time())
    claims = {"sub": "bench", "permissions": ["*"], "iat": now, "exp": now + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def start_server(root: Path, database_url: str, port: int, strict: bool) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    env.update(
        TASKER_DATABASE_URL=database_url,
        TASKER_EXAMPLES="true",
        TASKER_LOG_LEVEL="WARNING",
        TASKER_JWT_SECRET=SECRET,
        PYTHONPATH=str(root),
    )
    if strict:  # nothing open to anonymous callers: no token, no parse
        env.update(TASKER_METRICS_REQUIRES_AUTH="true", TASKER_HEALTH_STATUS_REQUIRES_AUTH="true")
    command = [sys.executable, "-m", "uvicorn", "--factory", "server.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen([*command, "--no-access-log"], cwd=root, env=env)


async def probe(client: httpx.AsyncClient, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        response = await client.get("/tasker/health/live")
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
    return latencies


async def attacker(
    client: httpx.AsyncClient, bearer: str | None, stop: asyncio.Event, out: dict[str, int]
) -> None:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    for document in itertools.cycle(ATTACKS):
        if stop.is_set():
            return
        query = f"{document} #{secrets.token_hex(8)}"
        response = await client.post("/tasker/graphql", json={"query": query}, headers=headers)
        key = f"{response.status_code}"
        if response.status_code == 200 and b"QUERY_TOO_COMPLEX" in response.content:
            key += " QUERY_TOO_COMPLEX"
        out[key] = out.get(key, 0) + 1


async def scenario(
    base: str, seconds: float, bearer: str | None, attack: bool
) -> dict[str, object]:
    timeout = httpx.Timeout(60.0)
    async with (
        httpx.AsyncClient(base_url=base, timeout=timeout) as probe_client,
        httpx.AsyncClient(base_url=base, timeout=timeout) as attack_client,
    ):
        stop = asyncio.Event()
        answers: dict[str, int] = {}
        attackers = [
            asyncio.create_task(attacker(attack_client, bearer, stop, answers))
            for _ in range(2 if attack else 0)
        ]
        await asyncio.sleep(0.5 if attack else 0)  # let the attack get going
        began = time.perf_counter()
        latencies = await probe(probe_client, seconds)
        elapsed = time.perf_counter() - began
        stop.set()
        await asyncio.gather(*attackers)
    return {
        "probes": len(latencies),
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "attack_rps": sum(answers.values()) / elapsed,
        "answers": ", ".join(f"{k}: {v}" for k, v in sorted(answers.items())) or "-",
    }


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(args.root, f"sqlite://{tmp}/tasker.db", port, args.strict)
        try:
            async with httpx.AsyncClient(base_url=base) as client:
                await wait_until_up(client)
            results = {
                "idle": await scenario(base, args.seconds, None, attack=False),
                "attack, no token": await scenario(base, args.seconds, None, attack=True),
                "attack, valid token": await scenario(base, args.seconds, token(), attack=True),
            }
        finally:
            server.terminate()
            server.wait(10)
    mode = "nothing waived" if args.strict else "default settings"
    print(
        f"code: {args.root} ({mode}); /tasker/health/live, one probe back to back "
        f"for {args.seconds} s"
    )
    print(
        f"{'scenario':<22}{'probes':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'attack req/s':>14}  attack answers"
    )
    for name, r in results.items():
        print(
            f"{name:<22}{r['probes']:>8}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}"
            f"{r['attack_rps']:>14.1f}  {r['answers']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout whose server code runs"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="TASKER_METRICS_REQUIRES_AUTH and TASKER_HEALTH_STATUS_REQUIRES_AUTH on",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
