"""Schedules fire each tick once: on a clock the test sets, on every step store, with one
process or two firing at once; catch-up after downtime; pause, resume, edit and delete;
handler-file schedules upserted at start."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from server.container import Services, build_services
from server.db.models import Schedule, ScheduleFire, Task
from server.domain.errors import Conflict, HandlerNotFound, ValidationFailed
from server.domain.schedules import CATCH_UP_CAP, ScheduleNotFound
from server.infra.ports import NullDispatcher
from server.registry.definitions import parse_definition
from server.registry.handler_registry import HandlerRegistry
from server.services.schedules import ScheduleService
from tests.conftest import fast_settings, on_every_store

pytestmark = on_every_store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EVERY_MINUTE = {"name": "tick", "namespace": "shapes", "handler": "linear", "cron": "* * * * *"}


class SetClock:
    """A clock that stays where the test puts it."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def on_clock(services: Services, moment: datetime = T0) -> SetClock:
    clock = SetClock(moment)
    services.changes.clock = clock
    return clock


async def fired_ticks(schedule_id: object) -> list[datetime]:
    rows = await Task.filter(schedule_id=schedule_id).order_by("scheduled_for")
    return [r.scheduled_for for r in rows]


async def test_a_tick_fires_once_when_it_comes_and_the_task_says_which(services: Services) -> None:
    clock = on_clock(services)
    view = await services.schedules.create(dict(EVERY_MINUTE, context={"n": 1}))
    assert view.next_fire_at == T0 + timedelta(minutes=1)
    assert (await services.schedules.fire_due()).fired == 0
    clock.moment = T0 + timedelta(minutes=1, seconds=5)
    assert (await services.schedules.fire_due()).fired == 1
    assert (await services.schedules.fire_due()).fired == 0  # already moved on
    (task,) = await Task.filter(schedule_id=view.id)
    assert task.scheduled_for == T0 + timedelta(minutes=1)
    assert task.context == {"n": 1}
    task_view = await services.tasks.get_task(task.id)
    assert task_view.schedule_id == view.id
    assert task_view.scheduled_for == T0 + timedelta(minutes=1)
    assert (await services.schedules.get(view.id)).next_fire_at == T0 + timedelta(minutes=2)


async def test_after_downtime_latest_fires_once_and_all_once_per_missed_tick(
    services: Services,
) -> None:
    clock = on_clock(services)
    latest = await services.schedules.create(EVERY_MINUTE)
    every = await services.schedules.create(dict(EVERY_MINUTE, name="each", catch_up="all"))
    clock.moment = T0 + timedelta(minutes=10, seconds=30)
    report = await services.schedules.fire_due()
    assert report.fired == 1 + 10
    assert await fired_ticks(latest.id) == [T0 + timedelta(minutes=10)]
    assert await fired_ticks(every.id) == [T0 + timedelta(minutes=m) for m in range(1, 11)]
    clock.moment = T0 + timedelta(days=1)
    await services.schedules.fire_due()
    assert len(await fired_ticks(every.id)) == 10 + CATCH_UP_CAP


async def test_two_processes_firing_at_once_fire_each_tick_once(
    services: Services, database_url: str, registry: HandlerRegistry, step_store: str | None
) -> None:
    other = build_services(
        fast_settings(database_url), NullDispatcher(), registry=registry, store=step_store
    )
    clock = on_clock(services)
    other.changes.clock = clock
    every = await services.schedules.create(dict(EVERY_MINUTE, cron="* * * * * *", catch_up="all"))
    for second in range(1, 21):
        clock.moment = T0 + timedelta(seconds=second)
        await asyncio.gather(services.schedules.fire_due(), other.schedules.fire_due())
    ticks = await fired_ticks(every.id)
    assert ticks == [T0 + timedelta(seconds=s) for s in range(1, 21)]
    assert await ScheduleFire.filter(schedule_id=every.id).count() == 20


async def test_a_tick_already_recorded_is_not_fired_again(services: Services) -> None:
    clock = on_clock(services)
    view = await services.schedules.create(EVERY_MINUTE)
    clock.moment = T0 + timedelta(minutes=1)
    await services.schedules.fire_due()
    # A process that died after firing but before moving next_fire_at: the next pass finds
    # the tick's row and creates nothing.
    await Schedule.filter(id=view.id).update(next_fire_at=T0 + timedelta(minutes=1))
    report = await services.schedules.fire_due()
    assert (report.fired, report.skipped) == (0, 1)
    assert await Task.filter(schedule_id=view.id).count() == 1


async def test_pause_resume_update_delete(services: Services) -> None:
    clock = on_clock(services)
    view = await services.schedules.create(EVERY_MINUTE)
    paused = await services.schedules.set_paused(view.id, True)
    assert paused.paused and (await services.schedules.set_paused(view.id, True)).paused
    clock.moment = T0 + timedelta(minutes=5, seconds=1)
    assert (await services.schedules.fire_due()).fired == 0
    resumed = await services.schedules.set_paused(view.id, False)
    assert not resumed.paused
    # The ticks that passed while paused are skipped, not caught up.
    assert resumed.next_fire_at == T0 + timedelta(minutes=6)
    changed = await services.schedules.update(
        view.id, {"cron": "0 * * * *", "timezone": "Europe/Paris", "context": {"k": 2}}
    )
    assert (changed.cron, changed.timezone, changed.context) == (
        "0 * * * *",
        "Europe/Paris",
        {"k": 2},
    )
    assert changed.next_fire_at == T0 + timedelta(hours=1)
    await services.schedules.delete(view.id)
    with pytest.raises(ScheduleNotFound):
        await services.schedules.get(view.id)
    with pytest.raises(ScheduleNotFound):
        await services.schedules.delete("not-a-uuid")


async def test_bad_input_writes_nothing(services: Services) -> None:
    on_clock(services)
    with pytest.raises(ValidationFailed) as caught:
        await services.schedules.create(dict(EVERY_MINUTE, cron="61 * * * *", timezone="X/Y"))
    assert set(caught.value.details or {}) == {"cron", "timezone"}
    with pytest.raises(HandlerNotFound):
        await services.schedules.create(dict(EVERY_MINUTE, handler="nope"))
    view = await services.schedules.create(EVERY_MINUTE)
    with pytest.raises(Conflict):
        await services.schedules.create(EVERY_MINUTE)
    with pytest.raises(ValidationFailed):
        await services.schedules.update(view.id, {"cron": "bad"})
    assert (await services.schedules.get(view.id)).cron == "* * * * *"
    assert await Schedule.all().count() == 1


def scheduled_registry(
    registry: HandlerRegistry, schedules: list[dict[str, object]]
) -> HandlerRegistry:
    definition = parse_definition(
        {
            "name": "nightly_report",
            "namespace_name": "reports",
            "version": "1.0.0",
            "step_templates": [{"name": "a", "handler_class": "tests.support.steps:Work"}],
            "schedules": schedules,
        },
        source="reports.yaml",
    )
    return HandlerRegistry.from_templates([*registry.all(), definition.template])


async def test_handler_file_schedules_are_upserted_at_start(
    database_url: str, registry: HandlerRegistry, step_store: str | None
) -> None:
    first = build_services(
        fast_settings(database_url),
        NullDispatcher(),
        registry=scheduled_registry(
            registry,
            [{"name": "nightly", "cron": "0 2 * * *"}, {"name": "hourly", "cron": "0 * * * *"}],
        ),
        store=step_store,
    )
    await first.open()  # the start-up upsert
    try:
        rows = {s.name: s for s in await first.schedules.list("reports")}
        assert set(rows) == {"nightly", "hourly"}
        assert all(s.source == "yaml" for s in rows.values())
        await first.schedules.set_paused(rows["nightly"].id, True)
        # The next start, with the file edited: one schedule changed, one removed.
        edited = scheduled_registry(
            registry, [{"name": "nightly", "cron": "30 3 * * *", "timezone": "Europe/Paris"}]
        )
        await ScheduleService(first.changes, edited, first.tasks.creator).sync_from_handlers()
        (nightly,) = await first.schedules.list("reports")
        # The file wins on what it declares; pausing is run-time state and is kept.
        assert (nightly.id, nightly.cron, nightly.timezone) == (
            rows["nightly"].id,
            "30 3 * * *",
            "Europe/Paris",
        )
        assert nightly.paused
    finally:
        await first.close()


async def test_pruning_a_fired_task_takes_its_fire_row(services: Services) -> None:
    from server.domain.states import TaskState
    from server.services.retention import prune_finished

    clock = on_clock(services)
    view = await services.schedules.create(EVERY_MINUTE)
    clock.moment = T0 + timedelta(minutes=1)
    await services.schedules.fire_due()
    await Task.filter(schedule_id=view.id).update(
        status=TaskState.COMPLETE.value, completed_at=T0 + timedelta(minutes=1)
    )
    clock.moment = T0 + timedelta(days=30)
    assert await prune_finished(clock, older_than=timedelta(days=7)) == 1
    assert await ScheduleFire.filter(schedule_id=view.id).count() == 0
    # The pruned tick lies behind next_fire_at: it is not fired again.
    assert (await services.schedules.fire_due()).fired == 1  # only the latest missed tick
    assert await fired_ticks(view.id) == [T0 + timedelta(days=30)]


async def test_a_cron_with_no_tick_left_is_paused_not_retried_for_ever(services: Services) -> None:
    clock = on_clock(services)
    view = await services.schedules.create(dict(EVERY_MINUTE, cron="0 0 1 6 * 0 2026"))
    clock.moment = datetime(2027, 6, 1, tzinfo=UTC)
    await services.schedules.fire_due()
    assert (await services.schedules.get(view.id)).paused
