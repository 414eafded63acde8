"""SQL statements per task creation, counted from Tortoise's query log (PostgreSQL).

    .venv/bin/python -m bench.creation_statements            # this tree
    PYTHONPATH=/tmp/old-tree .venv/bin/python -m bench.creation_statements   # another tree

Creates tasks through the service (what REST and GraphQL call) on a fresh database and
counts the statements each costs, transaction control included (BEGIN, COMMIT); with a
batch-capable core, also per task of a batch of 100.
"""

import asyncio
import logging
import os
from pathlib import Path

import asyncpg

from bench.engine_bench import PG_ADMIN

DB = "tasker_statements"
DB_URL = PG_ADMIN.rpartition("/")[0] + "/" + DB
HANDLERS = Path(__file__).resolve().parent / "handlers"


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.statements.append(record.getMessage())


async def main() -> None:
    from server.config import Settings
    from server.container import build_services
    from server.domain.views import CreateTask
    from server.infra.ports import NullDispatcher

    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {DB}")
    await admin.close()
    settings = Settings(database_url=DB_URL, handlers_path=str(HANDLERS))
    services = build_services(settings, NullDispatcher())
    await services.open(migrate=True)
    counter = Counter()
    log = logging.getLogger("tortoise.db_client")
    log.setLevel(logging.DEBUG)
    log.addHandler(counter)
    log.propagate = False

    def request(i: int, key: str | None = None) -> CreateTask:
        return CreateTask(namespace="bench", name="diamond", context={"i": i}, idempotency_key=key)

    await services.tasks.create_task(request(-1))  # warm: catalogue rows, caches
    for label, key in (("single create, no key", None), ("single create, with a key", "k1")):
        counter.statements.clear()
        await services.tasks.create_task(request(0, key))
        print(f"{label:32} {len(counter.statements):3} statements")
        for sql in counter.statements:
            print("    " + sql.split(":", 1)[0][:110].replace("\n", " "))
    if hasattr(services.tasks, "create_tasks"):
        counter.statements.clear()
        await services.tasks.create_tasks([request(i, f"b{i}") for i in range(100)])
        per = len(counter.statements) / 100
        print(f"{'batch of 100 (keyed), per task':32} {per:5.2f} statements")
    await services.close()


if __name__ == "__main__":
    os.environ.setdefault("TASKER_LOG_LEVEL", "WARNING")
    asyncio.run(main())
