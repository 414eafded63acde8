"""The key rows behind the single-statement claim (`tasker_limit_keys`), on every step store:
claims racing for a key's slots take exactly its limit, the key row always counts what its
slot rows hold, and every way a holder ends (completion, failure, cancel, lost lease) gives
its slot back, to the oldest waiting step of that key and not another key's."""

import asyncio
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from server.container import Services
from server.db.models import LimitKey, LimitSlot, WorkflowStep
from server.domain.views import CreateTask
from server.engine.pg_flow import complete_many_limited
from server.engine.pg_store import PgStore
from server.engine.store import Outcome
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import BACKEND, ROOT, WORKFLOWS, on_every_store
from tests.support.recorder import Recorder, recording
from tests.support.statements import Statements

pytestmark = on_every_store
FLOW = ROOT / "tests" / "fixtures" / "flow"
SCOPE = "step:flow/limited/sync"


@pytest.fixture(scope="module")
def registry() -> Iterator[HandlerRegistry]:
    yield HandlerRegistry.load([WORKFLOWS, FLOW], examples=False)


@pytest.fixture
def pg_services(services: Services) -> Services:
    """The services, when their store is the PostgreSQL statements' (the single-statement
    claim); the portable store's claim is its transaction."""
    if BACKEND != "postgres" or not isinstance(services.store, PgStore):
        pytest.skip("the PostgreSQL statement store")
    recording(services, Recorder())
    return services


async def limited(services: Services, customer: str, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        task, _ = await services.tasks.create_task(
            CreateTask(namespace="flow", name="limited", context={"customer": customer})
        )
        ids.append((await services.steps.get_step(task.id, "sync")).id)
    return ids


async def counted(key: str) -> tuple[int, int]:
    """(in_use, waiting) of the key row, after checking them against the slot rows."""
    row = await LimitKey.get(scope=SCOPE, key=key)
    slots = LimitSlot.filter(scope=SCOPE, key=key)
    assert row.in_use == await slots.filter(state__in=["held", "offered"]).count()
    assert row.waiting == await slots.filter(state="waiting").count()
    return row.in_use, row.waiting


async def test_claims_racing_for_one_key_take_exactly_its_limit(services: Services) -> None:
    recording(services, Recorder())
    ids = await limited(services, "acme", 8)
    await services.runner.claim(ids[0])  # makes the key row; the race is for the last slot
    claims = await asyncio.gather(*(services.runner.claim(i) for i in ids[1:]))
    assert len([c for c in claims if c is not None]) == 1
    assert await counted("acme") == (2, 6)
    # Finishing the racing winner hands its slot to the oldest waiter (offered: still counted).
    (winner,) = [c for c in claims if c is not None]
    assert await services.runner.record(winner, Outcome(results={})) == "complete"
    assert await counted("acme") == (2, 5)


async def _task_of(step_id: int) -> Any:
    from server.db.models import WorkflowStep

    row = await WorkflowStep.get(id=step_id)
    return row.task_id  # type: ignore[attr-defined]


async def test_a_freed_slot_goes_to_the_oldest_waiter_of_its_own_key(
    services: Services,
) -> None:
    _, recorder = recording(services, Recorder())
    a = await limited(services, "a", 5)
    b = await limited(services, "b", 3)
    held = [await services.runner.claim(i) for i in (a[0], a[1], b[0], b[1])]
    assert all(c is not None for c in held)
    for i in (*a[2:], *b[2:]):
        assert await services.runner.claim(i) is None
    recorder.sent.clear()
    assert await services.runner.record(held[2], Outcome(results={})) == "complete"
    assert recorder.sent == [b[2]]  # key b's only waiter, not key a's older ones
    recorder.sent.clear()
    assert await services.runner.record(held[0], Outcome(results={})) == "complete"
    assert recorder.sent == [a[2]]  # key a's oldest waiter
    assert await services.runner.claim(a[2]) is not None
    assert await services.runner.claim(b[2]) is not None
    assert await counted("a") == (2, 2)
    assert await counted("b") == (2, 0)


async def test_every_way_a_holder_ends_gives_its_slot_back(services: Services) -> None:
    clock, _ = recording(services, Recorder())
    ids = await limited(services, "acme", 6)
    first = await services.runner.claim(ids[0])
    second = await services.runner.claim(ids[1])
    assert first is not None and second is not None
    # A failure with a retry to come frees the slot at once; the retry needs one again.
    failed = Outcome(error="boom", error_class="X")
    assert await services.runner.record(first, failed) == "retrying"
    assert await counted("acme") == (1, 0)
    third = await services.runner.claim(ids[2])
    assert third is not None
    assert await services.runner.claim(ids[3]) is None
    assert await counted("acme") == (2, 1)
    # A cancelled holder's slot is free for the next claim (its row is stale, not counted).
    task = await _task_of(ids[1])
    await services.tasks.cancel_task(task)
    fourth = await services.runner.claim(ids[3])
    assert fourth is not None
    # Holders whose lease runs out: the sweeper takes their steps back and frees the slots.
    clock.advance_to(clock.now() + timedelta(hours=2))
    await services.sweeper.sweep()
    assert await counted("acme") == (0, 0)
    # The rest run one after another; once nothing runs or waits, the key row is back to 0.
    # (The reaped steps retry after a back-off counted from the sweep: let it pass.)
    clock.advance_to(clock.now() + timedelta(minutes=5))
    for i in (ids[0], ids[2], ids[3], ids[4], ids[5]):
        claim = await services.runner.claim(i)
        assert claim is not None
        assert await services.runner.record(claim, Outcome(results={})) == "complete"
    assert await counted("acme") == (0, 0)
    assert await LimitSlot.all().count() == 0


async def test_a_first_refusal_is_recorded_by_the_claim_statement_alone(
    pg_services: Services, statements: Statements
) -> None:
    # A burst of steps for one full key: each refusal holds the key row for one statement,
    # not for the portable claim's transaction.
    services = pg_services
    clock = services.changes.clock
    ids = await limited(services, "acme", 3)
    for step_id in ids[:2]:
        assert await services.runner.claim(step_id) is not None
    statements.seen.clear()
    assert await services.runner.claim(ids[2]) is None
    writes = statements.writes()
    assert len(writes) == 2, writes  # the unlimited claim (which skips it), the limited one
    assert all(w.lstrip().startswith("WITH") for w in writes)
    assert await counted("acme") == (2, 1)
    from server.db.models import WorkflowStep

    step = await WorkflowStep.get(id=ids[2])
    assert step.dispatched_at is not None and step.dispatched_at > clock.now() + timedelta(hours=1)


async def test_a_step_that_is_not_claimable_is_refused_by_the_statement_alone(
    pg_services: Services, statements: Statements
) -> None:
    # A duplicate message for a running step, or a step of a paused task: nothing for the
    # portable claim to decide, so no transaction of its own (as the unlimited claim).
    services = pg_services
    running, paused = await limited(services, "dup", 2)
    assert await services.runner.claim(running) is not None
    task_id = str((await WorkflowStep.get(id=paused)).task_id)  # type: ignore[attr-defined]
    await services.pausing.pause_task(task_id)
    for step_id in (running, paused):
        statements.seen.clear()
        assert await services.runner.claim(step_id) is None
        # The unlimited claim (which skips it), the limited one; no read of the portable claim.
        assert len(statements.seen) == 2, statements.seen
        assert all(s.lstrip().startswith("WITH") for s in statements.seen), statements.seen
    await services.pausing.resume_task(task_id)
    assert await services.runner.claim(paused) is not None  # refused for its pause, nothing else


async def test_a_key_seen_for_the_first_time_is_claimed_without_a_transaction(
    pg_services: Services, statements: Statements
) -> None:
    # Every new customer of a per-customer limit: its key row is made by one statement and the
    # limited claim statement runs again, rather than the portable claim's transaction.
    services = pg_services
    (step_id,) = await limited(services, "newcomer", 1)
    assert not await LimitKey.filter(scope=SCOPE, key="newcomer").exists()
    statements.seen.clear()
    assert await services.runner.claim(step_id) is not None
    writes = [w.lstrip() for w in statements.writes()]
    # The unlimited claim (which skips it), the limited one (which names the missing key),
    # the key row, the limited claim again.
    assert len(writes) == 4, writes
    assert writes[2].startswith("INSERT INTO tasker_limit_keys"), writes
    assert all(w.startswith("WITH") for i, w in enumerate(writes) if i != 2), writes
    assert await counted("newcomer") == (1, 0)


async def test_completions_written_together_free_their_slots_one_offer_each(
    pg_services: Services,
) -> None:
    # Steps with limits completing at once are written in one statement, like the others:
    # each slot freed goes to its own key's best waiting step, and only freed slots are offered.
    services = pg_services
    _, recorder = recording(services, Recorder())
    acme = await limited(services, "acme", 4)
    (zeta,) = await limited(services, "zeta", 1)
    held = [await services.runner.claim(i) for i in (acme[0], acme[1], zeta)]
    assert all(c is not None for c in held)
    for i in acme[2:]:
        assert await services.runner.claim(i) is None
    assert await counted("acme") == (2, 2)

    def together(*claims: Any) -> list[tuple[Any, str]]:
        return [(c, "{}") for c in claims]

    recorder.sent.clear()
    done = await complete_many_limited(services.store, together(held[0], held[2]))
    assert [r.result for r in done] == ["complete", "complete"]
    assert recorder.sent == [acme[2]]  # one slot of acme freed: its oldest waiter
    assert await counted("acme") == (2, 1)
    assert await counted("zeta") == (0, 0)
    offered = await services.runner.claim(acme[2])
    assert offered is not None
    recorder.sent.clear()
    await complete_many_limited(services.store, together(held[1], offered))
    assert recorder.sent == [acme[3]]  # two freed, one waiting
    assert await counted("acme") == (1, 0)
    assert not await LimitSlot.filter(step_id__in=[acme[0], acme[1], acme[2], zeta]).exists()


async def test_tasks_finished_together_hand_their_handler_slots_on(
    pg_services: Services,
) -> None:
    # `serial` runs one task per customer at a time: two customers' tasks finishing in one
    # statement each hand their customer's slot to that customer's next task.
    services = pg_services
    _, recorder = recording(services, Recorder())
    first, queued = [], []
    for customer in ("acme", "zeta"):
        for line in (first, queued):
            task, _ = await services.tasks.create_task(
                CreateTask(namespace="flow", name="serial", context={"customer": customer})
            )
            line.append(task)
    ends = []
    for task in first:
        start = await services.runner.claim(await step_of(services, task.id, "first"))
        assert start is not None
        await services.runner.record(start, Outcome(results={}))
        end = await services.runner.claim(await step_of(services, task.id, "second"))
        assert end is not None
        ends.append(end)
    waiting = [await step_of(services, task.id, "first") for task in queued]
    for step_id in waiting:
        assert await services.runner.claim(step_id) is None
    recorder.sent.clear()
    done = await complete_many_limited(services.store, [(c, "{}") for c in ends])
    assert [r.result for r in done] == ["complete", "complete"]
    assert sorted(recorder.sent) == sorted(waiting)
    for task in first:
        assert (await services.tasks.get_task(task.id)).status.value == "complete"
    for step_id in waiting:
        assert await services.runner.claim(step_id) is not None


def is_claim(statement: str) -> bool:
    """The unlimited claim (`WITH asked`) or the limited one (`WITH candidate`, `wanted`)."""
    return statement.lstrip().startswith(("WITH asked AS", "WITH candidate AS"))


async def step_of(services: Services, task_id: Any, name: str) -> int:
    return (await services.steps.get_step(task_id, name)).id


async def test_messages_say_which_steps_have_limits(
    pg_services: Services, statements: Statements
) -> None:
    # Created, handed a slot or made ready: a step with limits is sent saying so, and the
    # worker that takes the message claims it with the limited statement alone.
    services = pg_services
    _, recorder = recording(services, Recorder())
    acme = await limited(services, "acme", 3)
    plain, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    start = await step_of(services, plain.id, "start")
    assert recorder.sent == [*acme, start] and recorder.limited == acme
    holders = [await services.runner.claim(i) for i in acme[:2]]
    assert await services.runner.claim(acme[2]) is None
    recorder.sent.clear()
    recorder.limited.clear()
    await services.runner.record(holders[0], Outcome(results={}))  # its slot goes to acme[2]
    assert recorder.sent == recorder.limited == [acme[2]]
    statements.seen.clear()
    assert await services.runner.run_step(acme[2], limited=True) == "complete"
    claims = [s for s in statements.seen if is_claim(s)]
    assert len(claims) == 1 and "wanted AS" in claims[0], claims


async def test_a_child_its_parent_says_has_limits_is_claimed_by_their_statement_alone(
    pg_services: Services, statements: Statements
) -> None:
    # The worker that completes `first` runs `second` itself; the completion said `second` has
    # limits (the handler's), so its claim skips the unlimited statement, which would miss it.
    services = pg_services
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="flow", name="serial", context={"customer": "acme"})
    )
    first = (await services.steps.get_step(task.id, "first")).id
    statements.seen.clear()
    assert await services.runner.run_step(first) == "complete"
    claims = [s for s in statements.seen if is_claim(s)]
    unlimited = [s for s in claims if "wanted AS" not in s]
    # The unlimited claim ran once, for `first` (which it skipped); the rest are limited ones.
    assert len(unlimited) == 1 and len(claims) > 2, claims
    assert (await services.steps.get_step(task.id, "second")).status.value == "complete"
    # A step said to have limits that has none is still claimed.
    plain, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    start = (await services.steps.get_step(plain.id, "start")).id
    assert await services.runner.claimer.claim(start, limited=True) is not None


async def generic_plan(sql: str) -> str:
    """The plan PostgreSQL settles on for `sql` on a pooled connection (the generic one, made
    for any parameters: a statement prepared once and run many times)."""
    from tortoise.transactions import in_transaction

    count = max(int(n) for n in re.findall(r"\$(\d+)", sql))
    async with in_transaction() as conn:  # one connection for all four statements
        await conn.execute_query("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute_query(f"PREPARE plan_check AS {sql}")
        _, rows = await conn.execute_query(
            f"EXPLAIN EXECUTE plan_check({', '.join(['NULL'] * count)})"
        )
        await conn.execute_query("DEALLOCATE plan_check")
    return "\n".join(r["QUERY PLAN"] for r in rows)


async def test_limited_statements_find_key_and_slot_rows_by_index(pg_services: Services) -> None:
    # Per-customer keys: the key table holds a row for every customer ever seen, the slot
    # table one for every step waiting. A limited claim or completion must look its rows up,
    # not read either table.
    from tortoise import Tortoise

    from server.engine import pg_flow

    conn = Tortoise.get_connection("default")
    await conn.execute_query(
        'INSERT INTO tasker_limit_keys (scope, "key", in_use, waiting, starts)'
        " SELECT $1, 'k' || n, 0, 0, '[]'::jsonb FROM generate_series(1, 3000) AS n",
        [SCOPE],
    )
    await conn.execute_query(
        'INSERT INTO tasker_limit_slots (scope, "key", step_id, task_id, state, "limit",'
        " priority, created_at) SELECT $1, 'k' || n, n, gen_random_uuid(), 'waiting', 1, 2, now()"
        " FROM generate_series(1, 3000) AS n",
        [SCOPE],
    )
    await conn.execute_query("ANALYZE tasker_limit_keys")
    await conn.execute_query("ANALYZE tasker_limit_slots")
    for name, sql in (("claim", pg_flow.CLAIM_STATEMENT.sql), ("complete", pg_flow._COMPLETE_SQL)):
        plan = await generic_plan(sql)
        assert "Seq Scan on tasker_limit_keys" not in plan, (name, plan)
        assert "Seq Scan on tasker_limit_slots" not in plan, (name, plan)
