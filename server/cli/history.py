"""`tasker task events ID`: a task's transition history, and with `--follow` what comes next.

The history is read in one request (the GraphQL `task.transitions`, so a task still running
does not keep the command waiting); `--follow` then resumes the REST event stream after the
last cursor printed, so nothing is missed or printed twice. Each transition is numbered by its
cursor, the number `--after` takes.
"""

import json
import time
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from server.cli.render import parse_time, status_text
from server.cli.tasks import (
    connection_options,
    console,
    finish,
    output_option,
    session,
    task,
)
from server.client import TERMINAL, TaskerClient, TaskerError

HISTORY = """query TaskHistory($id: ID!) {
  task(id: $id) {
    id namespace
    transitions { cursor stepId stepName fromStatus toStatus reason occurredAt }
  }
}"""


def _event(task: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL transition in the shape of the REST event stream's `data`."""
    when = parse_time(row["occurredAt"])
    step_id = row.get("stepId")
    return {
        "cursor": int(row["cursor"]),
        "task_id": task["id"],
        "namespace": task["namespace"],
        "step_id": int(step_id) if step_id is not None else None,
        "step_name": row.get("stepName"),
        "from_status": (row.get("fromStatus") or "").lower() or None,
        "to_status": row["toStatus"].lower(),
        "reason": row.get("reason"),
        "occurred_at": when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if when
        else row["occurredAt"],
    }


def history(client: TaskerClient, task_id: str, after: int | None) -> list[dict[str, Any]]:
    """The task's transitions after cursor `after` (all of them without one), oldest first."""
    found = client.graphql(HISTORY, {"id": task_id})["task"]
    if found is None:  # gone since the caller read it
        return []
    rows = [_event(found, row) for row in found["transitions"]]
    return [row for row in rows if after is None or row["cursor"] > after]


def line(event: dict[str, Any], step_width: int = 0) -> Text:
    """#cursor  time (UTC, ms)  step  from → to  reason."""
    when = parse_time(event.get("occurred_at"))
    shown = when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if when else "?"
    before = event.get("from_status")
    return Text.assemble(
        (f"#{event['cursor']}", "dim"),
        "  ",
        shown,
        "  ",
        ((event.get("step_name") or "task").ljust(step_width), "bold"),
        "  ",
        status_text(before) if before else Text("—", style="dim"),
        " → ",
        status_text(event["to_status"]),
        "  ",
        (event.get("reason") or "", "dim"),
    )


def _live(client: TaskerClient, task_id: str, after: int | None) -> Iterator[dict[str, Any]]:
    """Transitions after `after` until the task stops: the event stream, or (if the server
    has none, or it breaks) the history polled once a second."""
    try:
        for frame in client.events(task_id, after=after):
            if frame.event != "message":
                return
            after = frame.data["cursor"]
            yield frame.data
    except TaskerError:
        pass
    while True:
        stopped = client.get_task(task_id)["status"] in TERMINAL
        for event in history(client, task_id, after):  # read after the status: none is lost
            after = event["cursor"]
            yield event
        if stopped:
            return
        time.sleep(1.0)


def _show(event: dict[str, Any], output: str, out: Console, step_width: int) -> None:
    if output == "json":
        click.echo(json.dumps(event))
    else:
        out.print(line(event, step_width), soft_wrap=True)  # one event a line, for grep


@task.command("events")
@click.argument("task_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the task ends; exit 0 "
              "if it completes, 1 on error or cancel.")  # fmt: skip
@click.option("--after", type=click.IntRange(min=0), help="Only transitions after this number.")
@output_option("table", "json")
@connection_options
def task_events(
    task_id: str,
    follow: bool,
    after: int | None,
    output: str,
    url: str,
    token: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Print a task's transition history: number, time (UTC), step, from → to, reason.

    With --output json (or --json), one JSON object per line, as the event stream sends them.
    """
    output = "json" if as_json else output
    out = console()
    with session(url, token, debug) as client:
        client.get_task(task_id)  # an unknown id: the REST error ([TASK_NOT_FOUND]), as `show`
        events = history(client, task_id, after)
        # Steps are all created with the task: their names fix the column for what follows.
        names = [step["name"] for step in client.list_steps(task_id)] if follow else []
        names += [event["step_name"] or "task" for event in events]
        width = min(max(map(len, names), default=4), 24)
        for event in events:
            after = event["cursor"]
            _show(event, output, out, width)
        if not follow:
            return
        for event in _live(client, task_id, after):
            _show(event, output, out, width)
        final = client.get_task(task_id)
    finish(dict(final))


__all__ = ["history", "line", "task_events"]
