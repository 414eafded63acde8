"""The PostgreSQL claim keeps a rate limit's buckets as `rate_window.after_start` does: the SQL
(`pg_flow_sql.AFTER_START`) run on stored buckets gives exactly the Python rule's buckets.

The Python rule carries the proofs (`tests/unit/test_rate_window.py`: never over the limit in
any window, bounded, near the limit when saturated); this holds the SQL to it."""

import json
import random

import pytest
from tortoise import Tortoise

from server.domain import rate_window as rw
from server.engine.pg_flow_sql import AFTER_START
from server.engine.pg_sql import Statement
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's claim statement")

KEEP = 60.0
_AFTER = Statement(
    f"""SELECT ({AFTER_START}) AS kept
          FROM (SELECT $period::float8 AS period, $lim::int AS lim) AS keys,
               (SELECT $starts::jsonb AS starts) AS k""",
    args=("starts", "period", "lim", "epoch", "keep"),
    moves={},
    states={},
)


def _histories(seed: int) -> list[tuple[rw.Buckets, float, float, int]]:
    """(stored buckets, a start's time, period, limit): busy and idle keys, starts older
    than the window, a start's time lagging the newest bucket, a saturated key."""
    chance = random.Random(seed)
    cases = []
    for _ in range(60):
        period = chance.choice([1.0, 10.0, 60.0])
        limit = chance.choice([1, 3, 10, 100, 100_000])
        now = 1_800_000_000.0
        buckets: rw.Buckets = []
        for _ in range(chance.randint(0, 150)):
            now += chance.choice([0.0, period / 300, period / 40, period / 3, period * 1.5])
            lag = chance.choice([0.0, 0.0, period / 10, 5.0])
            buckets = rw.after_start(buckets, now - lag, period, limit, KEEP)
        cases.append((buckets, now + chance.choice([0.0, period / 7, period * 2]), period, limit))
    return cases


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_claims_buckets_are_the_python_rules(services: object, seed: int) -> None:
    conn = Tortoise.get_connection("default")
    for buckets, now, period, limit in _histories(seed):
        stored = json.dumps(rw.stored(buckets))
        _, rows = await conn.execute_query(
            _AFTER.sql, _AFTER.values(stored, period, limit, now, KEEP)
        )
        kept = rw.read(json.loads(rows[0]["kept"]))
        assert kept == rw.after_start(buckets, now, period, limit, KEEP), (buckets, now)


async def test_bare_times_of_old_rows_count_one_start_each(services: object) -> None:
    conn = Tortoise.get_connection("default")
    now, period = 1_800_000_000.0, 10.0
    old = [now - 12.0, now - 3.0, now - 3.0, now - 1.0]  # as rows written before buckets
    _, rows = await conn.execute_query(
        _AFTER.sql, _AFTER.values(json.dumps(old), period, 10, now, KEEP)
    )
    kept = rw.read(json.loads(rows[0]["kept"]))
    assert kept == rw.after_start(rw.read(old), now, period, 10, KEEP)
    assert sum(n for _, n in kept) == 5  # the one outside the window merged, the rest, mine
