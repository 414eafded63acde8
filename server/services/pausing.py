"""Pause and resume: a task, or a handler (all its tasks, present and future).

A paused task starts no step: both step stores refuse the claim while the task row's
`paused_at` (paused by hand) or `handler_paused_at` (its handler is paused) is set. Running
steps finish, completions still dispatch their children (whose claims are refused), creation
is still accepted. Both flags are on the task row because every claim locks that row: a claim
waiting on a pause's lock re-reads them, so no step starts once the pause has committed.

Resuming clears the flag and re-sends the task's ready steps at once (their messages were
refused while paused, and the sweeper leaves paused tasks alone, so nothing else would).
Both directions are idempotent: pausing a paused task changes nothing and writes no history.
Each change is a history row of the task (reason `paused`, `resumed`, `handler paused`,
`handler resumed`) that keeps its status.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from tortoise.expressions import Q

from server.db.models import PausedHandler, Task, WorkflowStep
from server.db.sql import Query
from server.domain.errors import InvalidTransition
from server.domain.readiness import CLAIMABLE_TASK_STATES
from server.domain.states import StepState, TaskState
from server.domain.templates import HandlerTemplate
from server.domain.views import TaskView
from server.engine.changes import StateChanges, TaskRef, Transaction
from server.engine.map_slots import resume_items
from server.registry.handler_registry import HandlerRegistry
from server.services import queries

PAUSABLE = (TaskState.PENDING, TaskState.IN_PROGRESS, TaskState.ERROR)
"""Tasks that can still start a step (an errored one, once retried)."""
ALL_VERSIONS = ""


@dataclass(frozen=True, slots=True)
class HandlerPause:
    """A handler's pauses after a command: whether the version acted on is paused, and every
    pause in force ('' pauses all versions)."""

    paused: bool
    versions: tuple[str, ...]


class PauseService:
    """Pauses and resumes tasks and handlers through `StateChanges`."""

    def __init__(self, changes: StateChanges, registry: HandlerRegistry) -> None:
        self.changes = changes
        self.registry = registry

    async def pause_task(self, task_id: UUID | str) -> TaskView:
        """Pause a task (idempotent); InvalidTransition once it is complete or cancelled."""
        row = await queries.find_task(task_id)
        ref = TaskRef(row.id, row.namespace)
        async with self.changes.on_task(row.id) as (tx, current):
            paused = await _flag(tx, row.id)
            if paused is None:
                if current not in PAUSABLE:
                    raise InvalidTransition("task", current.value, "paused")
                await (
                    Task.filter(id=row.id)
                    .using_db(tx.conn)
                    .update(paused_at=tx.now, updated_at=tx.now)
                )
                await tx.record_task_event(ref, current, "paused")
        return await queries.find_task(row.id)

    async def resume_task(self, task_id: UUID | str) -> TaskView:
        """Resume a task (idempotent) and re-send its ready steps at once. A task whose
        handler is paused stays paused by it until the handler is resumed."""
        row = await queries.find_task(task_id)
        ref = TaskRef(row.id, row.namespace)
        async with self.changes.on_task(row.id) as (tx, current):
            if await _flag(tx, row.id) is not None:
                await (
                    Task.filter(id=row.id)
                    .using_db(tx.conn)
                    .update(paused_at=None, updated_at=tx.now)
                )
                await tx.record_task_event(ref, current, "resumed")
                await redispatch_ready(tx, [row.id])
                await resume_items(tx, [row.id], self._max_parallel)
        return await queries.find_task(row.id)

    async def pause_handler(
        self, namespace: str, name: str, version: str | None = None
    ) -> HandlerPause:
        """Pause a handler (one version, or all of them): its unfinished tasks and every task
        created for it from now on. Idempotent: pausing again changes nothing."""
        self.registry.get(namespace, name, version)  # NotFound / ValidationFailed
        key = version or ALL_VERSIONS
        async with self.changes.transaction() as tx:
            # Two pauses at once: one row, and neither fails (the unique key settles it).
            await PausedHandler.bulk_create(
                [PausedHandler(namespace=namespace, name=name, version=key, paused_at=tx.now)],
                ignore_conflicts=True,
                using_db=tx.conn,
            )
            tasks = Task.filter(
                namespace=namespace,
                name=name,
                handler_paused_at__isnull=True,
                status__in=[s.value for s in PAUSABLE],
            )
            if version:
                tasks = tasks.filter(version=version)
            # Lock them as a claim does, then flag them: a claim that waits on one of these
            # locks re-reads the flag after this commits, and refuses.
            # In id order: two handler commands at once lock rows in one order, never deadlock.
            rows = (
                await tasks.order_by("id")
                .select_for_update()
                .using_db(tx.conn)
                .only("id", "status")
            )
            ids = [r.id for r in rows]
            if ids:
                await Task.filter(id__in=ids).using_db(tx.conn).update(handler_paused_at=tx.now)
            for r in rows:
                ref = TaskRef(r.id, namespace)
                await tx.record_task_event(ref, TaskState(r.status), "handler paused")
        return await self.handler_pause(namespace, name, version)

    async def resume_handler(
        self, namespace: str, name: str, version: str | None = None
    ) -> HandlerPause:
        """Resume a handler (idempotent). Without a version every pause of the handler is
        lifted; with one, that version's (a pause of all versions still holds it)."""
        self.registry.get(namespace, name, version)
        async with self.changes.transaction() as tx:
            lifted = PausedHandler.filter(namespace=namespace, name=name)
            if version:
                lifted = lifted.filter(version=version)
            await lifted.using_db(tx.conn).delete()
            still: set[str] = set(
                await PausedHandler.filter(namespace=namespace, name=name)  # type: ignore[arg-type]
                .using_db(tx.conn)
                .values_list("version", flat=True)
            )
            if ALL_VERSIONS in still:
                return HandlerPause(True, tuple(sorted(still)))
            tasks = Task.filter(namespace=namespace, name=name, handler_paused_at__isnull=False)
            if still:
                tasks = tasks.exclude(version__in=list(still))
            # In id order: two handler commands at once lock rows in one order, never deadlock.
            rows = (
                await tasks.order_by("id")
                .select_for_update()
                .using_db(tx.conn)
                .only("id", "status")
            )
            ids = [r.id for r in rows]
            if ids:
                await Task.filter(id__in=ids).using_db(tx.conn).update(handler_paused_at=None)
            for r in rows:
                await tx.record_task_event(
                    TaskRef(r.id, namespace), TaskState(r.status), "handler resumed"
                )
            await redispatch_ready(tx, ids)
            await resume_items(tx, ids, self._max_parallel)
        return await self.handler_pause(namespace, name, version)

    def _max_parallel(self, namespace: str, name: str, version: str, step: str) -> int:
        return self.registry.get(namespace, name, version).step(step).max_parallel or 1

    async def handler_pause(self, namespace: str, name: str, version: str | None) -> HandlerPause:
        """Whether this handler (version) is paused, and every pause of it in force."""
        versions: list[str] = await PausedHandler.filter(  # type: ignore[assignment]
            namespace=namespace, name=name
        ).values_list("version", flat=True)
        paused = ALL_VERSIONS in versions or (version is not None and version in versions)
        return HandlerPause(paused, tuple(sorted(versions)))

    async def paused_handlers(self) -> dict[tuple[str, str], list[str]]:
        """Paused handlers: (namespace, name) -> paused versions ('' for all of them)."""
        paused: dict[tuple[str, str], list[str]] = {}
        for ns, name, version in await PausedHandler.all().values_list(
            "namespace", "name", "version"
        ):
            paused.setdefault((ns, name), []).append(version)
        return paused


def is_paused(
    paused: dict[tuple[str, str], list[str]], namespace: str, name: str, version: str
) -> bool:
    """Whether `paused_handlers()` pauses this handler version."""
    versions = paused.get((namespace, name), ())
    return ALL_VERSIONS in versions or version in versions


async def _flag(tx: Transaction, task_id: UUID) -> object:
    rows = await Task.filter(id=task_id).using_db(tx.conn).values_list("paused_at", flat=True)
    return rows[0] if rows else None


def paused_sql(namespace: str, name: str, version: str, all_versions: str) -> str:
    """SQL that is true when `tasker_paused_handlers` pauses a handler version (its arguments
    are SQL expressions: placeholders or columns)."""
    return (
        f'EXISTS (SELECT 1 FROM "{PausedHandler._meta.db_table}" ph'
        f" WHERE ph.namespace = {namespace} AND ph.name = {name}"
        f" AND ph.version IN ({all_versions}, {version}))"
    )


async def handler_paused(tx: Transaction, template: HandlerTemplate) -> bool:
    """Whether a task of this handler version is created paused (asked on every creation, in
    SQL written once: building it through the ORM cost more than the query itself)."""
    q = Query(tx.conn)
    paused = paused_sql(
        q(template.namespace), q(template.name), q(template.version), q(ALL_VERSIONS)
    )
    rows = await q.records(f"SELECT 1 WHERE {paused}")
    return bool(rows)


async def redispatch_ready(tx: Transaction, task_ids: Sequence[UUID]) -> int:
    """Send the ready steps of these tasks after commit: pending steps whose parents are done
    and retries that are due. Tasks still paused, not claimable, or not yet at their delayed
    start are left out (a delayed task's own message is still on its way)."""
    if not task_ids:
        return 0
    runnable = Q(status=StepState.PENDING.value, waiting_on=0) | Q(
        status=StepState.ERROR.value, next_attempt_at__lte=tx.now
    )
    ready: list[tuple[int, int]] = await (
        WorkflowStep.filter(
            runnable,
            task_id__in=list(task_ids),
            task__paused_at__isnull=True,
            task__handler_paused_at__isnull=True,
            task__status__in=[s.value for s in CLAIMABLE_TASK_STATES],
        )
        .filter(Q(task__run_at__isnull=True) | Q(task__run_at__lte=tx.now))
        .using_db(tx.conn)
        .values_list("id", "task__priority")
    )
    if ready:
        ids = [step_id for step_id, _ in ready]
        await WorkflowStep.filter(id__in=ids).using_db(tx.conn).update(dispatched_at=tx.now)
        for step_id, priority in ready:
            tx.dispatch_after_commit([step_id], priority=priority)
    return len(ready)
