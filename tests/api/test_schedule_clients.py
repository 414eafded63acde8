"""Schedules through the Python client and the `tasker schedules` commands, against the app
in-process: the same rules and errors as REST, a table with the next fire time."""

import asyncio

import httpx
import pytest
from click.testing import CliRunner

from server.cli import main
from server.client.aio import AsyncTaskerClient
from server.client.errors import NotFoundError, ValidationError
from tests.support.bridge import cli_talks_to


async def test_the_python_client_manages_schedules(client: httpx.AsyncClient) -> None:
    async with AsyncTaskerClient("http://testserver", http=client) as tasker:
        made = await tasker.create_schedule(
            "nightly", "shapes", "linear", "0 2 * * *", timezone="Europe/Paris", catch_up="all"
        )
        assert (made["timezone"], made["catch_up"], made["paused"]) == (
            "Europe/Paris",
            "all",
            False,
        )
        assert [s["id"] for s in await tasker.list_schedules("shapes")] == [made["id"]]
        assert (await tasker.pause_schedule(made["id"]))["paused"] is True
        assert (await tasker.resume_schedule(made["id"]))["paused"] is False
        changed = await tasker.update_schedule(made["id"], cron="*/10 * * * *")
        assert changed["cron"] == "*/10 * * * *"
        assert (await tasker.get_schedule(made["id"]))["cron"] == "*/10 * * * *"
        with pytest.raises(ValidationError) as caught:
            await tasker.create_schedule("bad", "shapes", "linear", "0 2 * *", timezone="No/Where")
        assert set(caught.value.details) == {"cron", "timezone"}
        await tasker.delete_schedule(made["id"])
        with pytest.raises(NotFoundError):
            await tasker.get_schedule(made["id"])


async def test_the_cli_lists_creates_pauses_resumes_and_deletes(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:

    cli_talks_to(client, monkeypatch)

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, ["schedules", *args, "--url", "http://testserver"])

    made = await asyncio.to_thread(
        run,
        "create",
        "every5",
        "shapes",
        "linear",
        "*/5 * * * *",
        "--context",
        '{"a": 1}',
        "--json",
    )
    assert made.exit_code == 0, made.output
    sid = httpx.Response(200, content=made.stdout).json()["id"]
    listed = await asyncio.to_thread(run, "list")
    assert listed.exit_code == 0, listed.output
    assert sid in listed.stdout and "every5" in listed.stdout and "active" in listed.stdout
    assert "next (UTC)" in listed.stdout
    paused = await asyncio.to_thread(run, "pause", sid)
    assert paused.exit_code == 0 and "paused" in paused.stdout
    resumed = await asyncio.to_thread(run, "resume", sid)
    assert resumed.exit_code == 0 and "active" in resumed.stdout
    bad = await asyncio.to_thread(run, "create", "x", "shapes", "linear", "not a cron")
    assert bad.exit_code == 1 and "cron" in bad.stderr
    deleted = await asyncio.to_thread(run, "delete", sid)
    assert deleted.exit_code == 0, deleted.output
    missing = await asyncio.to_thread(run, "pause", sid)
    assert missing.exit_code == 1 and "SCHEDULE_NOT_FOUND" in missing.stderr
