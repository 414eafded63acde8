"""`tasker schedules list|create|pause|resume|delete`: cron schedules on a (remote) server,
through its REST API like the task commands (`--url`, `--token`, `--json`)."""

import json
from typing import Any

import click
from rich.table import Table

from server.cli.tasks import connection_options, console, print_json, session
from server.client.schedule_calls import Schedule

WIDE = 120
"""From this many columns up the table also shows the handler and the time zone."""


def schedules_table(schedules: list[Schedule], width: int) -> Table:
    """The id is never cut (scripts copy it); narrow terminals lose handler and time zone."""
    wide = width >= WIDE
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("name", overflow="fold", min_width=6)
    if wide:
        table.add_column("handler", overflow="fold")
    table.add_column("cron", overflow="fold")
    if wide:
        table.add_column("timezone", no_wrap=True)
    table.add_column("next fire (UTC)" if wide else "next (UTC)", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for s in schedules:
        handler = f"{s['namespace']}.{s['handler']}" + (f"@{s['version']}" if s["version"] else "")
        state = "[yellow]paused[/]" if s["paused"] else "[green]active[/]"
        when = s["next_fire_at"].replace("T", " ")[: 19 if wide else 16][0 if wide else 5 :]
        cells = [s["id"], s["name"], handler, s["cron"], s["timezone"], when, state]
        table.add_row(*(cells if wide else [cells[0], cells[1], cells[3], when, state]))
    return table


def _show(found: Schedule | list[Schedule], as_json: bool) -> None:
    if as_json:
        print_json(found)
        return
    out = console()
    out.print(schedules_table(found if isinstance(found, list) else [found], out.width))


def _context(_ctx: click.Context, _param: click.Parameter, value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object")
    return parsed


@click.group()
def schedules() -> None:
    """List, create, pause, resume and delete cron schedules on a Tasker server."""


@schedules.command("list")
@click.option("--namespace", help="Only this namespace.")
@connection_options
def schedules_list(
    namespace: str | None, url: str, token: str | None, debug: bool, as_json: bool
) -> None:
    """Every schedule with its next fire time."""
    with session(url, token, debug) as client:
        _show(client.list_schedules(namespace), as_json)


@schedules.command("create")
@click.argument("name")
@click.argument("namespace")
@click.argument("handler")
@click.argument("cron")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--context", default="{}", callback=_context, help="The tasks' context (JSON).")
@click.option(
    "--catch-up",
    type=click.Choice(["latest", "all"]),
    default="latest",
    show_default=True,
    help="After downtime: one task (latest) or one per missed tick (all, at most 100).",
)
@click.option("--version", help="Handler version (default: the latest at each tick).")
@click.option("--paused", is_flag=True, help="Create it paused.")
@connection_options
def schedules_create(
    name: str,
    namespace: str,
    handler: str,
    cron: str,
    timezone: str,
    context: dict[str, Any],
    catch_up: str,
    version: str | None,
    paused: bool,
    url: str,
    token: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Create a schedule: CRON has five fields, or six with a trailing seconds field."""
    with session(url, token, debug) as client:
        made = client.create_schedule(
            name,
            namespace,
            handler,
            cron,
            timezone=timezone,
            context=context,
            catch_up=catch_up,  # type: ignore[arg-type]
            version=version,
            paused=paused,
        )
    _show(made, as_json)


def _command(verb: str, help_text: str) -> None:
    @schedules.command(verb, help=help_text)
    @click.argument("schedule_id")
    @connection_options
    def run(schedule_id: str, url: str, token: str | None, debug: bool, as_json: bool) -> None:
        with session(url, token, debug) as client:
            result = getattr(client, f"{verb}_schedule")(schedule_id)
        _show(result, as_json)


_command("pause", "Pause a schedule (idempotent).")
_command("resume", "Resume a schedule (idempotent); ticks missed while paused are skipped.")
_command("delete", "Delete a schedule; the tasks it fired stay.")
