"""`tasker task ...` and `tasker tasks list`: run and follow tasks on a (remote) server.

They talk to the server's public REST API through `server.client`, so they work against any
Tasker server: `--url`/`TASKER_URL` and `--token`/`TASKER_TOKEN`. Failures print the server's
message and exit non-zero; `--debug` (or `TASKER_DEBUG=1`) shows the traceback instead.
"""

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import click
from rich.console import Console

from server.cli import render, steps_view
from server.cli.batch_create import create_from_file, report
from server.cli.dynamic_view import dynamic_lines
from server.client import TaskerClient, TaskerError, ValidationError
from server.client.transport import DEFAULT_URL
from server.domain.states import TaskState

F = TypeVar("F", bound=Callable[..., Any])
STATUSES = tuple(s.value for s in TaskState)
EXIT_CODES = {"complete": 0, "resolved_manually": 0}
"""Exit status by a watched task's final state; anything else (error, cancelled) is 1."""


def connection_options(command: F) -> F:
    """--url, --token, --debug and --json on every command (also from the environment)."""
    options = [
        click.option(
            "--url",
            envvar="TASKER_URL",
            default=DEFAULT_URL,
            show_default=True,
            help="Server URL (env TASKER_URL).",
        ),
        click.option("--token", envvar="TASKER_TOKEN", help="Bearer token (env TASKER_TOKEN)."),
        click.option("--debug", is_flag=True, envvar="TASKER_DEBUG", help="Show tracebacks."),
        click.option("--json", "as_json", is_flag=True, help="Print the JSON the server sent."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def output_option(*formats: str) -> Callable[[F], F]:
    """`--output`/`-o` FORMAT (the first is the default); `--json` is a shorthand for json."""
    return click.option(
        "--output",
        "-o",
        "output",
        type=click.Choice(formats),
        default=formats[0],
        show_default=True,
        help="How to print: " + ", ".join(formats) + ".",
    )


@contextmanager
def session(url: str, token: str | None, debug: bool) -> Iterator[TaskerClient]:
    """A client; API errors become one line on stderr and exit status 1."""
    try:
        with TaskerClient(url, token or None) as client:
            yield client
    except TaskerError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc.message}" + (f" [{exc.code}]" if exc.code else ""), err=True)
        if isinstance(exc, ValidationError):
            for field, messages in exc.details.items():
                items = messages if isinstance(messages, list) else [messages]
                click.echo(f"  {field}: {'; '.join(map(str, items))}", err=True)
        sys.exit(1)
    except (TimeoutError, KeyboardInterrupt) as exc:
        if debug:
            raise
        click.echo(f"Error: {exc or 'interrupted'}", err=True)
        sys.exit(130 if isinstance(exc, KeyboardInterrupt) else 1)


def console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def _parse_context(_ctx: click.Context, _param: click.Parameter, value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"payment_id\": 1}'")
    return parsed


def finish(task: dict[str, Any]) -> None:
    sys.exit(EXIT_CODES.get(task["status"], 1))


@click.group()
def task() -> None:
    """Create, inspect, follow, cancel and retry tasks on a Tasker server."""


@task.command("create")
@click.argument("namespace", required=False)
@click.argument("name", required=False)
@click.option("--version", help="Handler version (default: the latest by semver).")
@click.option(
    "--context", default="{}", callback=_parse_context, help="The task context, a JSON object."
)
@click.option("--idempotency-key", help="Repeating a create with this key returns the first task.")
@click.option(
    "--delay", type=float, metavar="SECONDS", help="Start the task this many seconds from now."
)
@click.option(
    "--run-at", metavar="ISO", help="Start the task at this ISO 8601 time (with a time zone)."
)
@click.option(
    "--debounce-key",
    metavar="KEY",
    help="Collapse creations with this key (e.g. context.document_id) into one task.",
)
@click.option("--debounce-seconds", type=float, metavar="SECONDS", help="The debounce window.")
@click.option(
    "--priority",
    type=int,
    metavar="1..3",
    help="1 (low) .. 3 (high): first in line for a concurrency slot (default: the handler's).",
)
@click.option("--wait", is_flag=True, help="Follow the task until it ends; exit 0 if complete.")
@click.option(
    "--from-file",
    type=click.File("r"),
    help="Create the tasks of a JSON Lines file (one task body a line; - for stdin) in "
    "batches; NAMESPACE and NAME fill in lines that lack them.",
)
@click.option(
    "--batch-size", type=click.IntRange(1, 1000), default=500, show_default=True,
    help="Tasks per request with --from-file.",
)  # fmt: skip
@connection_options
def task_create(
    namespace: str | None,
    name: str | None,
    version: str | None,
    context: dict[str, Any],
    idempotency_key: str | None,
    delay: float | None,
    run_at: str | None,
    debounce_key: str | None,
    debounce_seconds: float | None,
    priority: int | None,
    wait: bool,
    from_file: IO[str] | None,
    batch_size: int,
    url: str,
    token: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Create a task from handler NAMESPACE NAME (or many: --from-file)."""
    if from_file is not None:
        defaults = {k: v for k, v in (("namespace", namespace), ("name", name)) if v}
        with session(url, token, debug) as client:
            summary = create_from_file(
                client, from_file, defaults, batch_size, Console(stderr=True)
            )
        report(summary, as_json)
        return
    if namespace is None or name is None:
        raise click.UsageError("NAMESPACE and NAME are required (or --from-file)")
    with session(url, token, debug) as client:
        created = client.create_task(
            namespace,
            name,
            context,
            version=version,
            idempotency_key=idempotency_key,
            run_at=run_at,
            delay_seconds=delay,
            debounce_key=debounce_key,
            debounce_seconds=debounce_seconds,
            priority=priority,
        )
        starts = f"  starts {created['run_at']}" if created.get("run_at") else ""
        if not wait:
            if as_json:
                print_json(created)
            else:
                click.echo(f"{created['id']}  {created['full_name']}  {created['status']}{starts}")
            return
        if not as_json:
            click.echo(f"created {created['id']} ({created['full_name']})")
            final = render.watch(client, created["id"], console())
        else:
            final = client.wait_for_task(created["id"])
            print_json(client.get_task(created["id"], include_dependencies=True))
    finish(dict(final))


@task.command("show")
@click.argument("task_id")
@output_option("table", "json")
@connection_options
def task_show(
    task_id: str, output: str, url: str, token: str | None, debug: bool, as_json: bool
) -> None:
    """Show a task, its steps, their tree (parents → children) and a timeline."""
    with session(url, token, debug) as client:
        found = client.get_task(task_id)
        steps = client.list_steps(task_id)
        if as_json or output == "json":
            print_json({**found, "workflow_steps": steps})
            return
        out = console()
        out.print(render.task_view(found, steps))
        if (dynamic := dynamic_lines(found, steps)) is not None:
            out.print(dynamic)
        out.print(steps_view.step_tree(steps))
        out.print(steps_view.timeline(found, steps, out.width))


@task.command("watch")
@click.argument("task_id")
@connection_options
def task_watch(task_id: str, url: str, token: str | None, debug: bool, as_json: bool) -> None:
    """Follow a task live until it ends; exit 0 when complete, 1 on error or cancel."""
    with session(url, token, debug) as client:
        if as_json:
            for frame in client.events(task_id):
                if frame.event == "message":
                    click.echo(json.dumps(frame.data))
            final = client.get_task(task_id)
        else:
            final = render.watch(client, task_id, console())
    finish(dict(final))


@task.command("cancel")
@click.argument("task_id")
@connection_options
def task_cancel(task_id: str, url: str, token: str | None, debug: bool, as_json: bool) -> None:
    """Cancel a task and its unfinished steps (repeating it is harmless)."""
    with session(url, token, debug) as client:
        _report(client.cancel_task(task_id), as_json)


@task.command("retry")
@click.argument("task_id")
@connection_options
def task_retry(task_id: str, url: str, token: str | None, debug: bool, as_json: bool) -> None:
    """Re-run the failed steps of a task in error."""
    with session(url, token, debug) as client:
        _report(client.retry_task(task_id), as_json)


@task.command("signal")
@click.argument("task_id")
@click.argument("name")
@click.option(
    "--payload",
    default="{}",
    callback=_parse_context,
    help="A JSON object: the waiting step's results (default {}).",
)
@click.option("--signal-id", help="Sending the same id again delivers the signal once.")
@connection_options
def task_signal(
    task_id: str,
    name: str,
    payload: dict[str, Any],
    signal_id: str | None,
    url: str,
    token: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Send signal NAME to a task's wait_for step (e.g. an approval)."""
    with session(url, token, debug) as client:
        sent = client.send_signal(task_id, name, payload, signal_id=signal_id)
    if as_json:
        print_json(sent)
    elif sent["consumed_by"]:
        click.echo(f"{sent['name']} ({sent['signal_id']}) completed step {sent['consumed_by']}")
    else:
        click.echo(f"{sent['name']} ({sent['signal_id']}) kept until a step waits for it")


def _report(found: Any, as_json: bool) -> None:
    if as_json:
        print_json(found)
    else:
        click.echo(f"{found['id']}  {found['full_name']}  {found['status']}")


@click.group()
def tasks() -> None:
    """List tasks on a Tasker server."""


@tasks.command("list")
@click.option("--namespace", help="Only this namespace.")
@click.option("--name", help="Only this handler name.")
@click.option("--version", help="Only this handler version.")
@click.option("--status", type=click.Choice(STATUSES), help="Only tasks in this state.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 100), default=25, show_default=True)
@output_option("table", "json", "ids")
@connection_options
def tasks_list(
    namespace: str | None,
    name: str | None,
    version: str | None,
    status: str | None,
    page: int,
    per_page: int,
    output: str,
    url: str,
    token: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Tasks, newest first, one page at a time."""
    with session(url, token, debug) as client:
        found = client.list_tasks(
            namespace=namespace,
            name=name,
            version=version,
            status=status,
            page=page,
            per_page=per_page,
        )
    if as_json or output == "json":
        print_json(found)
        return
    if output == "ids":  # for xargs: nothing but the ids
        for listed in found["tasks"]:
            click.echo(listed["id"])
        return
    out = console()
    out.print(render.tasks_table(found["tasks"], out.width))
    p = found["pagination"]
    out.print(
        f"page {p['current_page']} of {max(p['total_pages'], 1)} ({p['total_count']} tasks)",
        style="dim",
    )


__all__ = ["task", "tasks"]
