"""Cron schedules: the rules every surface shares (parse, validate, which ticks are due).

Cron expressions are read by croniter, never by hand: five fields (minute precision), or six
with a trailing seconds field (croniter's order: `*/5 * * * * 30` is second 30 of every fifth
minute), so the shortest interval is one second. Ticks are computed in the schedule's IANA time
zone (zoneinfo), so `0 9 * * *` in Europe/Paris stays at 09:00 local across DST changes; they
are stored and compared in UTC.

After downtime (or a long pause) the ticks missed since `next_fire_at` are fired once
(`catch_up: latest`, the default: one task, for the latest missed tick) or once each
(`catch_up: all`), at most `CATCH_UP_CAP` of them: the most recent ones, the older are skipped.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from server.domain.errors import NotFound
from server.domain.inputs import MAX_VERSION_LENGTH, InputProblems

CATCH_UP_CAP = 100
"""`catch_up: all` fires at most this many missed ticks at once (the most recent)."""
MAX_SCHEDULE_NAME = 128
MAX_CRON_LENGTH = 256


class CatchUp(StrEnum):
    """What a schedule does with the ticks it missed."""

    LATEST = "latest"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule as a handler YAML file declares it (the handler is the file's)."""

    name: str
    cron: str
    timezone: str = "UTC"
    context: dict[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = CatchUp.LATEST


def cron_problem(cron: object) -> str | None:
    """Why `cron` is not a usable cron expression (None when it is)."""
    if not isinstance(cron, str) or not cron.strip():
        return "must be a cron expression such as '*/5 * * * *'"
    if len(cron) > MAX_CRON_LENGTH:
        return f"must be at most {MAX_CRON_LENGTH} characters"
    try:
        croniter(cron, datetime(2026, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError, KeyError, TypeError, OverflowError) as exc:
        return f"'{cron}' is not a valid cron expression: {exc}"
    return None


def timezone_problem(name: object) -> str | None:
    """Why `name` is not an IANA time zone (None when it is)."""
    if not isinstance(name, str) or not name:
        return "must be an IANA time zone name such as 'UTC' or 'Europe/Paris'"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"'{name}' is not a known IANA time zone"
    return None


def catch_up_problem(value: object) -> str | None:
    """Why `value` is not a catch-up policy (None when it is)."""
    if value in {c.value for c in CatchUp}:
        return None
    return "must be 'latest' or 'all'"


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick strictly after `after`, in UTC."""
    start = after.astimezone(ZoneInfo(timezone))
    tick: datetime = croniter(cron, start).get_next(datetime)
    return tick.astimezone(UTC)


def latest_tick(cron: str, timezone: str, now: datetime) -> datetime:
    """The last tick at or before `now`, in UTC."""
    it = croniter(cron, now.astimezone(ZoneInfo(timezone)))
    tick: datetime = it.get_prev(datetime)
    following = next_tick(cron, timezone, tick)
    # croniter's previous tick excludes `now` itself when `now` is a tick.
    return following if following <= now else tick.astimezone(UTC)


def due_ticks(
    cron: str, timezone: str, catch_up: CatchUp, next_fire_at: datetime, now: datetime
) -> list[datetime]:
    """The ticks to fire now, oldest first: none before `next_fire_at` comes; then the latest
    tick (`latest`), or every tick from `next_fire_at` on (`all`, the last CATCH_UP_CAP)."""
    if next_fire_at > now:
        return []
    last = latest_tick(cron, timezone, now)
    if last < next_fire_at:
        return []
    if catch_up is CatchUp.LATEST:
        return [last]
    ticks = [last]
    it = croniter(cron, last.astimezone(ZoneInfo(timezone)))
    while len(ticks) < CATCH_UP_CAP:
        earlier = it.get_prev(datetime).astimezone(UTC)
        if earlier < next_fire_at:
            break
        ticks.append(earlier)
    return ticks[::-1]


class ScheduleNotFound(NotFound):
    """No schedule has this id."""

    type = "ScheduleNotFound"
    code = "SCHEDULE_NOT_FOUND"

    def __init__(self, schedule_id: object) -> None:
        super().__init__(f"Schedule '{schedule_id}' not found")


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A schedule as every surface shows it."""

    id: UUID
    name: str
    namespace: str
    handler: str
    version: str | None
    cron: str
    timezone: str
    context: dict[str, Any]
    catch_up: CatchUp
    paused: bool
    next_fire_at: datetime
    source: str
    """`yaml` (declared in a handler file) or `api`."""


SCHEDULE_FIELDS = ("name", "namespace", "handler", "version", "cron", "timezone", "context",
                   "catch_up")  # fmt: skip
"""What a caller may set on create (all but version/timezone/context/catch_up required) and
change on update (all but namespace and handler)."""


def schedule_problems(values: Mapping[str, Any], *, creating: bool) -> dict[str, list[str]]:
    """What breaks the schedule input rules, field by field (empty when nothing does)."""
    problems = InputProblems()
    required = ("name", "namespace", "handler", "cron") if creating else ()
    for key in required:
        if not values.get(key):
            problems.add(key, "is required")
    for key in ("name", "namespace", "handler"):
        if key in values and values[key] is not None:
            problems.text(key, values[key], MAX_SCHEDULE_NAME)
    if values.get("version") is not None:
        problems.text("version", values["version"], MAX_VERSION_LENGTH)
    rules = (("cron", cron_problem), ("timezone", timezone_problem),
             ("catch_up", catch_up_problem))  # fmt: skip
    for key, rule in rules:
        given = key in values and (values[key] is not None or key == "cron")
        if given and (problem := rule(values[key])) is not None:
            problems.add(key, problem)
    if "context" in values and values["context"] is not None:
        if not isinstance(values["context"], dict):
            problems.add("context", "must be a JSON object")
        else:
            problems.json("context", values["context"])
    return problems.details
