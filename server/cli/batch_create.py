"""`tasker task create --from-file tasks.jsonl`: many tasks through the batch endpoint.

Each line of the file is one task body, as `POST /tasker/tasks` takes it (namespace, name,
context, version, run_at, delay_seconds, tags, ..., plus an optional idempotency_key); blank
lines are skipped. NAMESPACE and NAME on the command line fill in lines that lack them. Lines
go to the server `batch_size` at a time; a line that is not a JSON object, or that the server
refuses, is reported with its line number and does not stop the others.
"""

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from server.client import TaskerClient

MAX_BATCH = 1000
"""The server's cap on one batch request."""


@dataclass
class Summary:
    """What a file's creation came to."""

    created: int = 0
    existing: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    """{"line": n, "error": {type, message, details?, code}} per refused line."""

    def as_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "existing": self.existing,
            "failed": len(self.failures),
            "failures": self.failures,
        }


def read_lines(stream: IO[str], defaults: dict[str, str]) -> Iterator[tuple[int, Any]]:
    """(line number, task body, or an error text for a line that is not a JSON object)."""
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON: {exc}"
            continue
        if not isinstance(body, dict):
            yield number, "must be a JSON object"
            continue
        yield number, {**defaults, **body}


def create_from_file(
    client: TaskerClient,
    stream: IO[str],
    defaults: dict[str, str],
    batch_size: int,
    err: Console,
) -> Summary:
    """Send the file's tasks in batches, a progress bar on `err`; returns the summary."""
    lines = list(read_lines(stream, defaults))
    summary = Summary()
    columns = (
        TextColumn("creating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        job = bar.add_task("create", total=len(lines))
        size = max(1, min(batch_size, MAX_BATCH))
        for start in range(0, len(lines), size):
            chunk = lines[start : start + size]
            _send(client, chunk, summary)
            bar.advance(job, len(chunk))
    return summary


def _send(client: TaskerClient, chunk: list[tuple[int, Any]], summary: Summary) -> None:
    bodies = [(n, body) for n, body in chunk if isinstance(body, dict)]
    for number, problem in chunk:
        if isinstance(problem, str):
            summary.failures.append(
                {"line": number, "error": {"code": "BAD_LINE", "message": problem}}
            )
    if not bodies:
        return
    reply = client.create_tasks([body for _n, body in bodies])
    for result in reply["results"]:
        number = bodies[result["index"]][0]
        if "task" not in result:  # refused: the result carries the error envelope instead
            summary.failures.append({"line": number, "error": result.get("error", {})})
        elif result["status"] == 201:
            summary.created += 1
        else:
            summary.existing += 1
    summary.failures.sort(key=lambda f: int(f["line"]))


def describe(failure: dict[str, Any]) -> str:
    """One failure as a line for people: `line 3: message [CODE] field: problem; ...`."""
    error = failure["error"]
    details = "; ".join(
        f"{name}: {', '.join(map(str, v if isinstance(v, list) else [v]))}"
        for name, v in (error.get("details") or {}).items()
    )
    text = f"line {failure['line']}: {error['message']} [{error['code']}]"
    return f"{text} {details}" if details else text


def report(summary: Summary, as_json: bool) -> None:
    """Print the summary (failures on stderr) and exit: 0 when every line made a task."""
    if as_json:
        click.echo(json.dumps(summary.as_json(), indent=2))
    else:
        for failure in summary.failures:
            click.echo(describe(failure), err=True)
        click.echo(
            f"created {summary.created}, existing {summary.existing}, "
            f"failed {len(summary.failures)}"
        )
    sys.exit(1 if summary.failures else 0)
