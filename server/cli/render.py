"""Rendering for the task commands: step tables, task lists and the live watch display.

Only the public client's JSON shapes come in here (what a remote server answers), so the
commands work the same against any Tasker server.
"""

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from server.client import TERMINAL, Step, Task, TaskerClient, TaskerError
from server.domain.states import StepState

_UNFINISHED = tuple(s.value for s in (StepState.ERROR, StepState.PENDING, StepState.IN_PROGRESS))

STATUS_STYLE = {
    "pending": "dim",
    "in_progress": "bold yellow",
    "complete": "green",
    "error": "bold red",
    "cancelled": "magenta",
    "resolved_manually": "cyan",
}


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def duration(step: Step, now: datetime | None = None) -> str:
    """Wall time of the last attempt; a running step counts up to now."""
    started, ended = parse_time(step.get("started_at")), parse_time(step.get("completed_at"))
    if started is None:
        return ""
    if ended is None or ended < started:
        if step["status"] != StepState.IN_PROGRESS.value:
            return ""
        ended = now or datetime.now(UTC)
    seconds = (ended - started).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def next_attempt(step: Step, now: datetime | None = None) -> str:
    when = parse_time(step.get("next_attempt_at"))
    if when is None or step["status"] != StepState.ERROR.value:
        return ""
    left = (when - (now or datetime.now(UTC))).total_seconds()
    return f"in {left:.1f} s" if left > 0 else "due now"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def task_header(task: Task) -> Text:
    return Text.assemble(
        (task["full_name"], "bold"), "  ", (task["id"], "dim"), "  ", status_text(task["status"])
    )


def steps_table(steps: Sequence[Step], now: datetime | None = None) -> Table:
    # No rules between columns, and no "next attempt" column when no step waits for one: at
    # 80 columns the reason keeps room to be read.
    waits = any(next_attempt(step, now) for step in steps)
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    for column in ("step", "status", "attempts", "duration", "next attempt")[: 5 if waits else 4]:
        table.add_column(column, no_wrap=True)
    table.add_column("why / last error", ratio=1)
    for step in steps:
        reason = step.get("blocked_reason")
        why = reason["message"] if reason else ""
        raw = step.get("last_error") or ""
        error = raw
        if raw and step.get("error_class") and step["status"] == StepState.ERROR.value:
            error = f"{step['error_class']}: {raw}"  # the code says permanent or retryable
        if raw and raw in why:
            why = why.replace(raw, error, 1)
        elif error and step["status"] in _UNFINISHED:
            why = f"{why}; last error: {error}" if why else error
        cells: list[str | Text] = [
            step["name"],
            status_text(step["status"]),
            f"{step['attempts']}/{max(step['retry_limit'], 1)}",
            duration(step, now),
        ]
        table.add_row(*cells, *([next_attempt(step, now)] if waits else []), why)
    return table


def task_view(task: Task, steps: Sequence[Step]) -> Group:
    return Group(task_header(task), steps_table(steps))


def age(value: str, now: datetime | None = None) -> str:
    """How long ago, to the largest whole unit: '45s ago', '12m ago', '3h ago', '2d ago'."""
    when = parse_time(value)
    if when is None:
        return ""
    seconds = max((now or datetime.now(UTC)) - when, timedelta()).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


ID_WIDTH = 36
WIDE = 120
"""From this many columns up the list shows absolute creation times; below, ages."""


def tasks_table(tasks: Iterable[Task], width: int, now: datetime | None = None) -> Table:
    """The id is never cut (scripts copy it); the handler folds and times shorten instead."""
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    table.add_column("id", no_wrap=True, min_width=ID_WIDTH)
    table.add_column("status", no_wrap=True)
    table.add_column("handler", overflow="fold")
    table.add_column("created (UTC)" if width >= WIDE else "created", no_wrap=True)
    for task in tasks:
        created = task["created_at"]
        shown = created.replace("T", " ")[:19] if width >= WIDE else age(created, now)
        table.add_row(task["id"], status_text(task["status"]), task["full_name"], shown)
    return table


class _Screen:
    """What the live display shows; redrawn a few times a second so clocks keep moving."""

    def __init__(self, client: TaskerClient, task_id: str) -> None:
        self.client = client
        self.task_id = task_id
        self.state: tuple[Task, list[Step]]
        self.reload()

    def reload(self) -> Task:
        task = self.client.get_task(self.task_id)
        self.state = (task, self.client.list_steps(self.task_id))
        return task

    def render(self) -> Group:
        task, steps = self.state
        return task_view(task, steps)


def watch(client: TaskerClient, task_id: str, console: Console) -> Task:
    """Show the task's steps live until it stops; returns the final task.

    Server-sent events say when something changed (no polling delay); if the stream is not
    available, or breaks, it falls back to polling once a second. Without a terminal (a pipe,
    a CI log) it prints one line per transition and the final table instead.
    """
    screen = _Screen(client, task_id)
    interactive = console.is_terminal
    live = Live(
        console=console, get_renderable=screen.render, refresh_per_second=4, transient=False
    )
    if interactive:
        live.start()
    try:
        task = screen.state[0]
        if task["status"] not in TERMINAL:
            try:
                for frame in client.events(task_id):
                    if frame.event != "message":
                        break
                    if interactive:
                        screen.reload()
                    else:
                        console.print(_event_line(frame.data))
            except TaskerError:
                pass  # no event stream here: poll instead
            while screen.reload()["status"] not in TERMINAL:
                time.sleep(1.0)
        task = screen.reload()
    finally:
        if interactive:
            live.stop()
    if not interactive:
        console.print(screen.render())
    return task


def _event_line(event: dict[str, Any]) -> str:
    who = event.get("step_name") or "task"
    return f"{who}: {event.get('from_status') or '-'} -> {event.get('to_status')}"
