"""Signals: deliver an event (an approval, a webhook) to a task's `wait_for` step.

Every surface (REST `POST /tasks/{id}/signals/{name}`, GraphQL `sendSignal`, the client, the
CLI, the console) calls `SignalService.send`. Under the task's row lock the signal is stored
(once per `signal_id`), then, if a step waiting for it is parked, it completes that step with
the payload (history reason `signal`); otherwise it is kept, and the step consumes it when
it is reached (`server.engine.builtin_steps`).
"""

from typing import Any
from uuid import UUID, uuid4

from tortoise.exceptions import IntegrityError

from server.db.models import Signal, WorkflowStep
from server.domain.errors import Conflict, TaskNotFound, ValidationFailed
from server.domain.inputs import MAX_KEY_LENGTH, InputProblems
from server.domain.states import TERMINAL_TASK_STATES, StepState, TaskState
from server.domain.views import SignalView
from server.domain.waits import REASON_SIGNAL
from server.engine.builtin_steps import finish_without_handler, take_signal
from server.engine.changes import StateChanges, TaskRef
from server.services.queries import parse_task_id


def _problems(payload: Any, signal_id: Any) -> dict[str, list[str]]:
    """Problems with the body. The name is checked against the task's steps, once the task
    is known to exist (a missing task is a 404 whatever the name)."""
    problems = InputProblems()
    if signal_id is not None:
        if not isinstance(signal_id, str) or not signal_id:
            problems.add("signal_id", "must be a non-empty string")
        else:
            problems.text("signal_id", signal_id, MAX_KEY_LENGTH)
    if payload is not None and not isinstance(payload, dict):
        problems.add("payload", "must be a JSON object")
    elif payload is not None:
        problems.json("payload", payload)
    return problems.details


class SignalService:
    """Delivers signals; every status change through `StateChanges`."""

    def __init__(self, changes: StateChanges) -> None:
        self.changes = changes

    async def send(
        self,
        task_id: UUID | str,
        name: str,
        payload: Any = None,
        signal_id: str | None = None,
    ) -> SignalView:
        """Deliver signal `name` to the task; the same `signal_id` twice is delivered once.

        TaskNotFound; Conflict (409) for a finished task; ValidationFailed (422) for bad input
        or a name no step of the task waits for. `payload` must be a JSON object (or None:
        `{}`); anything else is a ValidationFailed, whatever surface passed it."""
        problems = _problems(payload, signal_id)
        if problems:
            raise ValidationFailed("invalid signal", problems)
        tid = parse_task_id(task_id)
        body = {} if payload is None else payload
        try:
            return await self._send(tid, name, body, signal_id)
        except IntegrityError:  # a concurrent delivery of the same id won: answer with it
            if signal_id is None:
                raise
            found = await Signal.get_or_none(task_id=tid, signal_id=signal_id)
            if found is None:
                raise
            return await _view(found, created=False)

    async def _send(
        self, tid: UUID, name: str, payload: dict[str, Any], signal_id: str | None
    ) -> SignalView:
        async with self.changes.transaction() as tx:
            row = await tx.locked_task_row(tid, "namespace")
            if row is None:
                raise TaskNotFound(tid)
            if signal_id is not None:
                found = (
                    await Signal.filter(task_id=tid, signal_id=signal_id).using_db(tx.conn).first()
                )
                if found is not None:
                    return await _view(found, created=False)
            status = row.status
            if TaskState(status) in TERMINAL_TASK_STATES:
                raise Conflict(
                    f"task {tid} is {status}: it takes no more signals",
                    {"status": [f"task is {status}"]},
                )
            waiting = (
                []
                if not isinstance(name, str) or len(name) > MAX_KEY_LENGTH
                else await WorkflowStep.filter(task_id=tid, waits_for=name)
                .using_db(tx.conn)
                .order_by("position", "id")
                .values("id", "name", "status", "wake_at")
            )
            if not waiting:
                raise ValidationFailed(
                    f"no step of this task waits for signal '{name}'",
                    {"name": [f"no step of this task waits for signal '{name}'"]},
                )
            signal = await Signal.create(
                using_db=tx.conn,
                task_id=tid,
                name=name,
                signal_id=signal_id or uuid4().hex,
                payload=payload,
                received_at=tx.now,
            )
            parked = [s for s in waiting if s["status"] == StepState.PENDING.value and s["wake_at"]]
            consumed_by = None
            if parked:
                step = parked[0]
                taken = await take_signal(tx, tid, name, step["id"])
                if taken is not None:
                    meta = {"signal": name, "signal_id": taken.signal_id}
                    task = TaskRef(tid, row.namespace)
                    if await finish_without_handler(
                        tx, task, TaskState(status), step["id"], step["name"],
                        StepState.PENDING, taken.payload, REASON_SIGNAL, meta,
                    ):  # fmt: skip
                        consumed_by = step["name"] if taken.id == signal.id else None
            return SignalView(
                tid, name, signal.signal_id, payload, signal.received_at, consumed_by, True
            )


async def _view(row: Signal, *, created: bool) -> SignalView:
    step_id = row.consumed_by_id  # type: ignore[attr-defined]
    consumed = None
    if step_id is not None:
        names = await WorkflowStep.filter(id=step_id).values_list("name", flat=True)
        consumed = str(names[0]) if names else None
    return SignalView(
        row.task_id,  # type: ignore[attr-defined]
        row.name,
        row.signal_id,
        row.payload,
        row.received_at,
        consumed,
        created,
    )
