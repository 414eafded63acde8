"""Cron rules: which ticks are due, in a time zone across DST, with each catch-up policy,
and the load-time errors of a handler file's `schedules:` block."""

from datetime import UTC, datetime, timedelta

import pytest

from server.domain.errors import TemplateInvalid
from server.domain.schedules import (
    CATCH_UP_CAP,
    CatchUp,
    cron_problem,
    due_ticks,
    latest_tick,
    next_tick,
    schedule_problems,
    timezone_problem,
)
from server.registry.definitions import parse_definition

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_next_and_latest_ticks_of_a_five_minute_schedule() -> None:
    assert next_tick("*/5 * * * *", "UTC", T0) == T0 + timedelta(minutes=5)
    assert latest_tick("*/5 * * * *", "UTC", T0) == T0
    assert latest_tick("*/5 * * * *", "UTC", T0 + timedelta(minutes=4)) == T0


def test_a_sixth_field_is_seconds() -> None:
    assert next_tick("* * * * * *", "UTC", T0) == T0 + timedelta(seconds=1)
    assert next_tick("* * * * * */10", "UTC", T0) == T0 + timedelta(seconds=10)


def test_local_time_is_kept_across_daylight_saving_changes() -> None:
    # Paris moves to summer time on 2026-03-29: 09:00 local is 08:00 UTC before, 07:00 after.
    before = next_tick("0 9 * * *", "Europe/Paris", datetime(2026, 3, 28, 0, 0, tzinfo=UTC))
    after = next_tick("0 9 * * *", "Europe/Paris", before)
    assert before == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)
    assert after == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


def test_catch_up_latest_fires_one_tick_and_all_fires_each_up_to_the_cap() -> None:
    missed_from = T0
    now = T0 + timedelta(minutes=10, seconds=30)
    assert due_ticks("* * * * *", "UTC", CatchUp.LATEST, missed_from, now) == [
        T0 + timedelta(minutes=10)
    ]
    every = due_ticks("* * * * *", "UTC", CatchUp.ALL, missed_from, now)
    assert every == [T0 + timedelta(minutes=m) for m in range(11)]
    long_ago = due_ticks("* * * * *", "UTC", CatchUp.ALL, T0, T0 + timedelta(days=1))
    assert len(long_ago) == CATCH_UP_CAP
    assert long_ago[-1] == T0 + timedelta(days=1)  # the most recent ones are kept
    assert due_ticks("* * * * *", "UTC", CatchUp.ALL, now, now - timedelta(seconds=1)) == []


def test_invalid_cron_time_zone_and_policy_are_named() -> None:
    assert cron_problem("*/5 * * * *") is None
    assert cron_problem("61 * * * *") is not None
    assert cron_problem("every day") is not None
    assert timezone_problem("Europe/Paris") is None
    assert timezone_problem("Mars/Olympus") is not None
    problems = schedule_problems(
        {"name": "n", "namespace": "a", "handler": "b", "cron": "nope", "timezone": "X/Y",
         "catch_up": "some"},
        creating=True,
    )  # fmt: skip
    assert set(problems) == {"cron", "timezone", "catch_up"}


def handler_yaml(schedules: object) -> dict[str, object]:
    return {
        "name": "nightly_report",
        "namespace_name": "reports",
        "version": "1.0.0",
        "step_templates": [{"name": "a", "handler_class": "tests.support.steps:Work"}],
        "schedules": schedules,
    }


def test_yaml_schedules_are_read_with_their_defaults() -> None:
    definition = parse_definition(
        handler_yaml([{"name": "nightly", "cron": "0 2 * * *", "context": {"x": 1}}]),
        source="reports.yaml",
    )
    (spec,) = definition.template.schedules
    assert (spec.name, spec.cron, spec.timezone, spec.catch_up) == (
        "nightly",
        "0 2 * * *",
        "UTC",
        CatchUp.LATEST,
    )
    assert spec.context == {"x": 1}


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"name": "nightly", "cron": "0 25 * * *"}, "cron"),
        ({"name": "nightly", "cron": "0 2 * * *", "timezone": "Nowhere/Land"}, "timezone"),
        ({"name": "nightly", "cron": "0 2 * * *", "catch_up": "sometimes"}, "catch_up"),
        ({"name": "nightly", "cron": "0 2 * * *", "every": 3}, "unknown field 'every'"),
        ({"name": "nightly"}, "cron"),
    ],
)
def test_a_bad_yaml_schedule_is_a_load_error_naming_file_and_schedule(
    entry: dict[str, object], words: str
) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        parse_definition(handler_yaml([entry]), source="reports.yaml")
    assert str(caught.value.message).startswith("reports.yaml: schedule 'nightly': ")
    assert words in caught.value.message
    assert caught.value.details == {"file": "reports.yaml", "schedule": "nightly"}
