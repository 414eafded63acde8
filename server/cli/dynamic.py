"""`tasker task rerun` (fork a finished task from a step) and the bulk commands
`tasker tasks cancel|retry|rerun` (every task a filter matches, after a confirmation).

Bulk commands go through the REST bulk endpoints page by page (`--batch` tasks per call,
following `next_cursor`), drawing a progress bar; `--yes` skips the prompt, `--dry-run` only
counts what matches.
"""

import json
from typing import Any

import click
from rich.progress import Progress

from server.cli.tasks import (
    STATUSES,
    _parse_context,
    _report,
    connection_options,
    console,
    print_json,
    session,
    task,
    tasks,
)
from server.client import TaskerClient


def _optional_context(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> dict[str, Any] | None:
    """`--context` of a fork: absent keeps each task's own context (click calls a callback
    for an absent option too, with None, which is not JSON)."""
    return None if value is None else _parse_context(ctx, param, value)


@task.command("rerun")
@click.argument("task_id")
@click.option("--from", "from_step", required=True, help="The first step to run again.")
@click.option(
    "--context", callback=_optional_context, default=None, help="JSON object replacing the context."
)
@click.option(
    "--inputs", default=None, help='JSON object of step inputs, e.g. {"charge": {"retry": true}}.'
)
@connection_options
def task_rerun(
    task_id: str,
    from_step: str,
    context: dict[str, Any] | None,
    inputs: str | None,
    url: str,
    token: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Fork a finished task: a new task keeps the results of the steps not downstream of
    --from and re-runs the rest (with --context / --inputs when given)."""
    step_inputs = _json_object(inputs, "--inputs") if inputs else None
    with session(url, token, debug) as client:
        created = client.rerun_task(task_id, from_step, context=context, inputs=step_inputs)
        _report(created, as_json)


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=option) from exc
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option)
    return value


def filter_options(command: Any) -> Any:
    """The bulk filter: every given option must match."""
    for option in reversed(
        [
            click.option("--namespace", help="Only this namespace."),
            click.option("--name", help="Only this handler name."),
            click.option("--version", help="Only this handler version."),
            click.option("--status", type=click.Choice(STATUSES), help="Only this state."),
            click.option("--created-after", help="ISO 8601 with a time zone."),
            click.option("--created-before", help="ISO 8601 with a time zone."),
            click.option("--id", "ids", multiple=True, help="Only these task ids (repeatable)."),
            click.option("--limit", type=click.IntRange(min=1), help="Stop after this many."),
            click.option(
                "--batch",
                type=click.IntRange(1, 10_000),
                default=500,
                show_default=True,
                help="Tasks per request.",
            ),
            click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
        ]
    ):
        command = option(command)
    return connection_options(command)


def _filter(options: dict[str, Any]) -> dict[str, Any]:
    keys = ("namespace", "name", "version", "status", "created_after", "created_before")
    flt = {k: options[k] for k in keys if options.get(k)}
    if options.get("ids"):
        flt["ids"] = list(options["ids"])
    return flt


def _run_bulk(action: str, options: dict[str, Any], **extra: Any) -> None:
    flt = _filter(options)
    if not flt:
        raise click.UsageError("give at least one filter option (e.g. --status error)")
    with session(options["url"], options["token"], options["debug"]) as client:
        matching = _count(client, flt)
        if matching is not None and options.get("limit"):
            matching = min(matching, options["limit"])
        if matching == 0:
            click.echo("no task matches")
            return
        if not options["yes"]:
            many = "every" if matching is None else str(matching)
            click.confirm(f"{action} {many} task(s) matching {flt}?", abort=True)
        affected = _pages(client, action, flt, matching, options, extra)
    if options["as_json"]:
        print_json({"count": len(affected), "ids": affected})
    else:
        click.echo(f"{action}: {len(affected)} task(s) changed")


def _count(client: TaskerClient, flt: dict[str, Any]) -> int | None:
    """How many tasks match, when the list endpoint can tell (None: unknown beforehand)."""
    if "created_after" in flt or "created_before" in flt:
        return None
    if "ids" in flt:
        return len(flt["ids"])
    listed = {k: flt.get(k) for k in ("namespace", "name", "version", "status")}
    page = client.list_tasks(per_page=1, **listed)
    return int(page["pagination"]["total_count"])


def _pages(
    client: TaskerClient,
    action: str,
    flt: dict[str, Any],
    total: int | None,
    options: dict[str, Any],
    extra: dict[str, Any],
) -> list[str]:
    def call(flt: dict[str, Any], *, limit: int, cursor: str | None) -> Any:
        if action == "cancel":
            return client.bulk_cancel_tasks(flt, limit=limit, cursor=cursor)
        if action == "retry":
            return client.bulk_retry_tasks(flt, limit=limit, cursor=cursor)
        return client.bulk_rerun_tasks(
            flt, extra["from_step"], context=extra.get("context"), limit=limit, cursor=cursor
        )

    affected: list[str] = []
    cursor: str | None = None
    seen = 0
    with Progress(console=console(), transient=True) as bar:
        job = bar.add_task(action, total=total)
        while True:
            size = options["batch"]
            if options.get("limit"):
                size = min(size, options["limit"] - seen)
            result = call(flt, limit=size, cursor=cursor)
            affected.extend(result["ids"])
            seen += size
            bar.update(job, completed=seen if total is None else min(seen, total))
            cursor = result.get("next_cursor")
            if not cursor or (options.get("limit") and seen >= options["limit"]):
                return affected


@tasks.command("cancel")
@filter_options
def tasks_cancel(**options: Any) -> None:
    """Cancel every task the filter matches (asks first; --yes does not)."""
    _run_bulk("cancel", options)


@tasks.command("retry")
@filter_options
def tasks_retry(**options: Any) -> None:
    """Retry every errored task the filter matches (asks first; --yes does not)."""
    _run_bulk("retry", options)


@tasks.command("rerun")
@click.option("--from", "from_step", required=True, help="The step each task re-runs from.")
@click.option(
    "--context",
    callback=_optional_context,
    default=None,
    help="JSON object replacing each task's context.",
)
@filter_options
def tasks_rerun(from_step: str, context: dict[str, Any] | None, **options: Any) -> None:
    """Fork every finished task the filter matches from one step (asks first)."""
    _run_bulk("rerun", options, from_step=from_step, context=context)
