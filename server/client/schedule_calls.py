"""The schedule endpoints (`/tasker/schedules`), as `Call` builders like `calls`' others.

`calls` re-exports them, so `endpoints.Endpoints` lists them beside the rest.
"""

from typing import Any, Literal, NotRequired, TypedDict
from urllib.parse import quote

from server.client.transport import Call

CatchUp = Literal["latest", "all"]


class Schedule(TypedDict):
    id: str
    name: str
    namespace: str
    handler: str
    version: str | None
    cron: str
    timezone: str
    context: dict[str, Any]
    catch_up: CatchUp
    paused: bool
    next_fire_at: str
    source: NotRequired[str]


def _one(schedule_id: str) -> str:
    return f"/schedules/{quote(str(schedule_id), safe='')}"


def list_schedules(namespace: str | None = None) -> Call[list[Schedule]]:
    """Every schedule (of one namespace), with its next fire time."""
    return Call("GET", "/schedules", {"namespace": namespace}, unwrap="schedules")


def get_schedule(schedule_id: str) -> Call[Schedule]:
    """One schedule."""
    return Call("GET", _one(schedule_id))


def create_schedule(
    name: str,
    namespace: str,
    handler: str,
    cron: str,
    *,
    timezone: str = "UTC",
    context: dict[str, Any] | None = None,
    catch_up: CatchUp = "latest",
    version: str | None = None,
    paused: bool = False,
) -> Call[Schedule]:
    """Create a cron schedule (a sixth cron field is seconds; `timezone` is an IANA name)."""
    body: dict[str, Any] = {
        "name": name, "namespace": namespace, "handler": handler, "cron": cron,
        "timezone": timezone, "context": context or {}, "catch_up": catch_up, "paused": paused,
    }  # fmt: skip
    if version is not None:
        body["version"] = version
    # A repeat after a lost reply would be a 409 (the name is taken): never repeated blindly.
    return Call("POST", "/schedules", json=body, idempotent=False)


def update_schedule(
    schedule_id: str,
    *,
    name: str | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    context: dict[str, Any] | None = None,
    catch_up: CatchUp | None = None,
    version: str | None = None,
) -> Call[Schedule]:
    """Change a schedule; a new cron or time zone moves its next tick."""
    given = {"name": name, "cron": cron, "timezone": timezone, "context": context,
             "catch_up": catch_up, "version": version}  # fmt: skip
    return Call("PATCH", _one(schedule_id), json={k: v for k, v in given.items() if v is not None})


def pause_schedule(schedule_id: str) -> Call[Schedule]:
    """Pause a schedule (idempotent)."""
    return Call("POST", f"{_one(schedule_id)}/pause")


def resume_schedule(schedule_id: str) -> Call[Schedule]:
    """Resume a schedule (idempotent); ticks that passed while paused are skipped."""
    return Call("POST", f"{_one(schedule_id)}/resume")


def delete_schedule(schedule_id: str) -> Call[Schedule]:
    """Delete a schedule; the tasks it fired stay. Returns what was deleted."""
    return Call("DELETE", _one(schedule_id), idempotent=False)
