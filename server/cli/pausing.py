"""`tasker task pause|resume ID` and `tasker handlers pause|resume NAMESPACE/NAME`: through the
server's REST API, like the other task commands."""

from typing import Any

import click

from server.cli.commands import handlers
from server.cli.tasks import connection_options, print_json, session, task


def _task_line(found: Any, as_json: bool) -> None:
    if as_json:
        print_json(found)
        return
    paused = "  paused" if found.get("paused") else ""
    click.echo(f"{found['id']}  {found['full_name']}  {found['status']}{paused}")


@task.command("pause")
@click.argument("task_id")
@connection_options
def task_pause(task_id: str, url: str, token: str | None, debug: bool, as_json: bool) -> None:
    """Pause a task: running steps finish, no new step starts (repeating it is harmless)."""
    with session(url, token, debug) as client:
        _task_line(client.pause_task(task_id), as_json)


@task.command("resume")
@click.argument("task_id")
@connection_options
def task_resume(task_id: str, url: str, token: str | None, debug: bool, as_json: bool) -> None:
    """Resume a paused task: its ready steps start at once (repeating it is harmless)."""
    with session(url, token, debug) as client:
        _task_line(client.resume_task(task_id), as_json)


def _handler(value: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name:
        raise click.BadParameter("expected NAMESPACE/NAME, e.g. payments/process_payment")
    return namespace, name


def _handler_line(state: Any, as_json: bool) -> None:
    if as_json:
        print_json(state)
        return
    which = f"@{state['version']}" if state.get("version") else ""
    word = "paused" if state["paused"] else "running"
    click.echo(f"{state['namespace']}/{state['name']}{which}  {word}")


@handlers.command("pause")
@click.argument("handler", metavar="NAMESPACE/NAME")
@click.option("--version", help="Only this version (default: every version).")
@connection_options
def handlers_pause(
    handler: str, version: str | None, url: str, token: str | None, debug: bool, as_json: bool
) -> None:
    """Pause a handler on a server: no step of its tasks, present and future, starts."""
    namespace, name = _handler(handler)
    with session(url, token, debug) as client:
        _handler_line(client.pause_handler(namespace, name, version=version), as_json)


@handlers.command("resume")
@click.argument("handler", metavar="NAMESPACE/NAME")
@click.option("--version", help="Only this version's pause (default: every pause).")
@connection_options
def handlers_resume(
    handler: str, version: str | None, url: str, token: str | None, debug: bool, as_json: bool
) -> None:
    """Resume a paused handler on a server: its tasks' ready steps start at once."""
    namespace, name = _handler(handler)
    with session(url, token, debug) as client:
        _handler_line(client.resume_handler(namespace, name, version=version), as_json)
