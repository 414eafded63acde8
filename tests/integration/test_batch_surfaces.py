"""Batch creation from the Python client (sync and async) and `tasker task create --from-file`."""

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from server.cli import main
from server.client.aio import AsyncTaskerClient
from server.client.sync import TaskerClient
from tests.support.bridge import Bridge, cli_talks_to


async def test_the_async_client_creates_many_with_per_entry_results(client) -> None:
    entries = [
        {"namespace": "shapes", "name": "linear", "context": {}, "idempotency_key": "k1"},
        {"namespace": "shapes", "name": "nope", "context": {}},
        {"namespace": "shapes", "name": "linear", "context": {}, "delay_seconds": 60},
    ]
    async with AsyncTaskerClient("http://testserver", http=client) as tasker:
        first = await tasker.create_tasks(entries)
        again = await tasker.create_tasks(entries[:1])
    assert [r["status"] for r in first["results"]] == [201, 404, 201]
    assert first["results"][1]["error"]["code"] == "HANDLER_NOT_FOUND"
    assert first["results"][2]["task"]["run_at"] is not None
    assert again["results"][0]["task"]["id"] == first["results"][0]["task"]["id"]
    assert (again["created"], again["existing"]) == (0, 1)


async def test_the_sync_client_creates_many(client) -> None:
    bridge = Bridge(client, asyncio.get_running_loop())

    def send() -> dict:  # type: ignore[type-arg]
        http = httpx.Client(transport=bridge, base_url="http://testserver")
        with TaskerClient("http://testserver", http=http) as tasker:
            return dict(tasker.create_tasks([{"namespace": "shapes", "name": "diamond"}] * 3))

    reply = await asyncio.to_thread(send)
    assert reply["created"] == 3


async def test_the_cli_creates_a_file_of_tasks_and_reports_bad_lines(
    client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_talks_to(client, monkeypatch)
    lines = [json.dumps({"context": {}, "reason": f"n{i}"}) for i in range(7)]
    lines[2] = "{not json"
    lines[4] = json.dumps({"name": "missing_handler"})
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    args = ["task", "create", "shapes", "linear", "--from-file", str(path), "--batch-size", "2"]

    def run(*extra: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, [*args, "--url", "http://testserver", *extra])

    plain = await asyncio.to_thread(run)
    assert plain.exit_code == 1, plain.output
    assert "created 5, existing 0, failed 2" in plain.stdout
    assert "line 3: not valid JSON" in plain.stderr
    assert "line 5:" in plain.stderr and "HANDLER_NOT_FOUND" in plain.stderr

    lines = [json.dumps({"context": {}, "idempotency_key": f"file-{i}"}) for i in range(3)]
    path.write_text("\n".join(lines))
    first = await asyncio.to_thread(run, "--json")
    again = await asyncio.to_thread(run, "--json")
    assert first.exit_code == 0 and again.exit_code == 0, first.output
    assert json.loads(first.stdout)["created"] == 3
    assert json.loads(again.stdout) == {"created": 0, "existing": 3, "failed": 0, "failures": []}
