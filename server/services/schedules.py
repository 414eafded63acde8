"""Cron schedules: manage them, upsert the handler files' ones, and fire the due ticks.

Firing: every process runs `fire_due` on its background loop (workers and the embedded
server alike), sleeping until the earliest `next_fire_at` (at most `schedule_interval`) or
until a change made through this service rings `alarm`. With nothing due a pass is one
indexed query for that time; else one indexed query finds the due schedules, and for each
due tick a task is created together with a (schedule_id, tick) row whose unique index lets
exactly one process win, whatever the number of processes: a loser's insert fails and its
task is rolled back with it. `next_fire_at` then moves past now by compare-and-set. A process
that dies mid-way leaves `next_fire_at` where it was, so the next pass of any process fires
what is left (the fire rows say what was already done). No per-schedule thread or timer.

YAML schedules (`source = yaml`) are upserted at start: the file's cron, time zone, context
and catch-up policy win over run-time edits; `paused` is run-time state and is kept. A
schedule removed from the file of a handler this process loads is deleted then; a handler no
longer loaded at all leaves its schedules alone (another process may still serve it).
"""

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from croniter import CroniterError
from tortoise.exceptions import IntegrityError

from server.db.models import Schedule
from server.domain.errors import Conflict, DomainError, ValidationFailed
from server.domain.inputs import text_filter_problems
from server.domain.schedules import (
    CatchUp,
    ScheduleNotFound,
    ScheduleView,
    due_ticks,
    next_tick,
    schedule_problems,
)
from server.domain.versions import semver_key
from server.domain.views import CreateTask, ScheduleTick
from server.engine.changes import StateChanges
from server.infra.alarm import Alarm
from server.registry.handler_registry import HandlerRegistry
from server.services.creation import TaskCreator

log = logging.getLogger(__name__)

YAML = "yaml"
API = "api"
EDITABLE = ("name", "version", "cron", "timezone", "context", "catch_up")
AFTER_TICK = 0.005  # a timer may go off a hair early: a look before the tick finds nothing
SHORTEST_SLEEP = 0.01  # more due than a pass took: look again at once, but never spin


def schedule_view(row: Schedule) -> ScheduleView:
    """A schedule row as a view."""
    return ScheduleView(
        id=row.id,
        name=row.name,
        namespace=row.namespace,
        handler=row.handler,
        version=row.version,
        cron=row.cron,
        timezone=row.timezone,
        context=row.context or {},
        catch_up=CatchUp(row.catch_up),
        paused=row.paused,
        next_fire_at=row.next_fire_at,
        source=row.source,
    )


@dataclass(frozen=True, slots=True)
class FireReport:
    """What one firing pass did."""

    fired: int = 0
    """Tasks this process created for due ticks."""
    skipped: int = 0
    """Ticks another process had fired already, or that could not make a task."""
    next_due: datetime | None = None
    """The earliest `next_fire_at` of the unpaused schedules after this pass (None: none)."""


class ScheduleService:
    """Schedules on every surface; `fire_due` on every process's background loop."""

    def __init__(
        self, changes: StateChanges, registry: HandlerRegistry, creator: TaskCreator
    ) -> None:
        self.changes = changes
        self.registry = registry
        self.creator = creator
        self.batch = 100
        self.alarm = Alarm()
        """Rung by every change made here: this process's firer then looks again at once."""

    async def list(self, namespace: str | None = None) -> list[ScheduleView]:
        """Every schedule (of one namespace), by namespace, handler and name."""
        if problems := text_filter_problems({"namespace": namespace}):
            raise ValidationFailed("Invalid filter", problems)
        query = Schedule.all() if namespace is None else Schedule.filter(namespace=namespace)
        rows = await query.order_by("namespace", "handler", "name")
        return [schedule_view(r) for r in rows]

    async def get(self, schedule_id: UUID | str) -> ScheduleView:
        """The schedule, or ScheduleNotFound."""
        return schedule_view(await self._row(schedule_id))

    async def create(self, values: dict[str, Any], *, source: str = API) -> ScheduleView:
        """A new schedule (ValidationFailed, HandlerNotFound, Conflict on a taken name)."""
        values = {k: v for k, v in values.items() if v is not None}
        self._check(values, creating=True)
        now = self.changes.clock.now()
        spec = {"timezone": "UTC", "context": {}, "catch_up": CatchUp.LATEST.value, **values}
        try:
            row = await Schedule.create(
                id=uuid4(),
                paused=bool(values.get("paused", False)),
                next_fire_at=next_tick(spec["cron"], spec["timezone"], now),
                source=source,
                created_at=now,
                updated_at=now,
                **{k: spec.get(k) for k in ("namespace", "handler", *EDITABLE)},
            )
        except IntegrityError:
            raise self._taken(spec["name"]) from None
        self.alarm.ring()
        return schedule_view(row)

    async def update(self, schedule_id: UUID | str, changes: dict[str, Any]) -> ScheduleView:
        """Change the editable fields; a new cron or time zone recomputes `next_fire_at`."""
        row = await self._row(schedule_id)
        # null means "leave it" except for version, where it means "the latest".
        changes = {
            k: v for k, v in changes.items() if k in EDITABLE and (v is not None or k == "version")
        }
        merged = {k: getattr(row, k) for k in ("namespace", "handler", *EDITABLE)} | changes
        self._check(
            {k: v for k, v in merged.items() if k in changes or k in ("namespace", "handler")}
            | {"cron": merged["cron"], "context": merged["context"]},
            creating=False,
        )
        now = self.changes.clock.now()
        fields: dict[str, Any] = {k: merged[k] for k in changes} | {"updated_at": now}
        if "cron" in changes or "timezone" in changes:
            fields["next_fire_at"] = next_tick(merged["cron"], merged["timezone"], now)
        try:
            await Schedule.filter(id=row.id).update(**fields)
        except IntegrityError:
            raise self._taken(merged["name"]) from None
        self.alarm.ring()
        return await self.get(row.id)

    async def set_paused(self, schedule_id: UUID | str, paused: bool) -> ScheduleView:
        """Pause or resume (idempotent). Resuming skips the ticks that passed while paused."""
        row = await self._row(schedule_id)
        if row.paused != paused:
            now = self.changes.clock.now()
            fields: dict[str, Any] = {"paused": paused, "updated_at": now}
            if not paused:
                fields["next_fire_at"] = next_tick(row.cron, row.timezone, now)
            await Schedule.filter(id=row.id).update(**fields)
            self.alarm.ring()
        return await self.get(row.id)

    async def delete(self, schedule_id: UUID | str) -> ScheduleView:
        """Delete a schedule; the tasks it fired stay. Returns what was deleted."""
        row = await self._row(schedule_id)
        await Schedule.filter(id=row.id).delete()
        self.alarm.ring()
        return schedule_view(row)

    async def sync_from_handlers(self) -> None:
        """Upsert the schedules the loaded handler files declare (see the module's doc)."""
        declared: dict[tuple[str, str, str], dict[str, Any]] = {}
        # Oldest version first, so the newest file's declaration of a name wins.
        for template in sorted(self.registry.all(), key=lambda t: semver_key(t.version)):
            for spec in template.schedules:
                declared[(template.namespace, template.name, spec.name)] = {
                    "namespace": template.namespace,
                    "handler": template.name,
                    "name": spec.name,
                    "cron": spec.cron,
                    "timezone": spec.timezone,
                    "context": spec.context,
                    "catch_up": spec.catch_up.value,
                }
        loaded = {(t.namespace, t.name) for t in self.registry.all()}
        existing = {(r.namespace, r.handler, r.name): r for r in await Schedule.filter(source=YAML)}
        for key, stale in existing.items():
            if key not in declared and key[:2] in loaded:
                await Schedule.filter(id=stale.id).delete()
        for key, values in declared.items():
            row = existing.get(key)
            if row is None:
                # Conflict: another process upserted it first, or an API schedule has the name.
                with contextlib.suppress(Conflict):
                    await self.create(values, source=YAML)
                continue
            changed = {k: v for k, v in values.items() if getattr(row, k) != v}
            if changed:
                await self.update(row.id, changed)
        self.alarm.ring()  # removals too; what it created or updated has rung already

    async def fire_due(self) -> FireReport:
        """Fire every due tick of every due schedule once (see the module's doc)."""
        now = self.changes.clock.now()
        earliest = await self.next_due()
        if earliest is None or earliest > now:
            return FireReport(next_due=earliest)
        rows = await (
            Schedule.filter(paused=False, next_fire_at__lte=now)
            .order_by("next_fire_at")
            .limit(self.batch)
        )
        report = FireReport()
        for row in rows:
            try:
                ticks = due_ticks(
                    row.cron, row.timezone, CatchUp(row.catch_up), row.next_fire_at, now
                )
                following = next_tick(row.cron, row.timezone, now)
            except (CroniterError, ValueError) as exc:
                # A cron with no tick left (`... 2027` once 2027 is over): pause it, or it
                # would stay due and be looked at on every pass for ever.
                log.warning("schedule %s (%s) has no next tick, paused: %s", row.name, row.id, exc)
                await Schedule.filter(id=row.id).update(paused=True, updated_at=now)
                continue
            for tick in ticks:
                fired = await self._fire(row, tick)
                report = replace(
                    report, fired=report.fired + fired, skipped=report.skipped + (not fired)
                )
            # Compare-and-set: a process that moved it meanwhile (or an edit) wins.
            await Schedule.filter(id=row.id, next_fire_at=row.next_fire_at).update(
                next_fire_at=following
            )
        return replace(report, next_due=await self.next_due())

    async def next_due(self) -> datetime | None:
        """The earliest `next_fire_at` of the unpaused schedules (their index's first entry)."""
        first = Schedule.filter(paused=False).order_by("next_fire_at").limit(1)
        found: list[datetime] = await first.values_list(  # type: ignore[assignment]
            "next_fire_at", flat=True
        )
        return found[0] if found else None

    def seconds_until(self, due: datetime | None, longest: float) -> float:
        """How long the firer may sleep before `due` comes: just past it, at most `longest`
        (nothing known, a far tick, or a clock that jumps: the next look is never later)."""
        if due is None:
            return longest
        wait = (due - self.changes.clock.now()).total_seconds() + AFTER_TICK
        return min(max(wait, SHORTEST_SLEEP), longest)

    async def _fire(self, row: Schedule, tick: datetime) -> bool:
        request = CreateTask(
            namespace=row.namespace,
            name=row.handler,
            version=row.version,
            context=row.context or {},
            initiator=f"schedule:{row.name}",
            source_system="tasker.schedules",
            reason=f"schedule '{row.name}' tick {tick.isoformat()}",
            fired=ScheduleTick(schedule_id=row.id, tick=tick),
        )
        try:
            await self.creator.create(request)
        except IntegrityError:
            return False  # fired by another process: its (schedule_id, tick) row exists
        except DomainError as exc:
            # The handler went away or its schema changed: skip the tick, do not loop on it.
            log.warning("schedule %s (%s) could not fire %s: %s", row.name, row.id, tick, exc)
            return False
        return True

    def _check(self, values: dict[str, Any], *, creating: bool) -> None:
        problems = schedule_problems(values, creating=creating)
        if problems:
            raise ValidationFailed("Invalid schedule", problems)
        template = self.registry.get(values["namespace"], values["handler"], values.get("version"))
        if "context" in values:
            self.registry.validate_context(template, values["context"])

    @staticmethod
    async def _row(schedule_id: UUID | str) -> Schedule:
        try:
            key = schedule_id if isinstance(schedule_id, UUID) else UUID(str(schedule_id))
        except ValueError:
            raise ScheduleNotFound(schedule_id) from None
        row = await Schedule.get_or_none(id=key)
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return row

    @staticmethod
    def _taken(name: object) -> Conflict:
        return Conflict(
            f"A schedule named '{name}' already exists for this handler",
            {"name": ["already used by another schedule of this handler"]},
        )
