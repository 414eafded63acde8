"""`tasker task ...` / `tasker tasks list` as a person runs them: subprocesses against a server."""

import json
import subprocess
import uuid
from pathlib import Path

from server.client import TaskerClient
from tests.people.conftest import TASKER, Server


def tasker(
    server: Server, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASKER, *args], capture_output=True, text=True, timeout=timeout, env=server.env(**env)
    )


def test_create_and_wait_exits_0_when_complete(server: Server) -> None:
    context = json.dumps({"payment_id": 5, "simulate_failures": {"charge_card": 1}})
    run = tasker(
        server, "task", "create", "payments", "process_payment", "--context", context, "--wait"
    )
    assert run.returncode == 0, run.stderr
    assert "charge_card: in_progress -> error" in run.stdout  # progress, line by line
    assert "task: in_progress -> complete" in run.stdout
    assert "complete" in run.stdout.splitlines()[-1] or "complete" in run.stdout


def test_create_prints_id_then_show_and_list(server: Server) -> None:
    run = tasker(
        server,
        "task",
        "create",
        "payments",
        "process_payment",
        "--version",
        "2.1.0",
        "--context",
        '{"payment_id": 6}',
    )
    assert run.returncode == 0, run.stderr
    task_id = run.stdout.split()[0]
    uuid.UUID(task_id)
    with TaskerClient(server.url) as client:
        client.wait_for_task(task_id, timeout=30, poll=0.1)
    shown = tasker(server, "task", "show", task_id)
    assert shown.returncode == 0
    assert "payments.process_payment@2.1.0" in shown.stdout
    for step in ("validate_payment", "charge_card", "update_order", "send_confirmation"):
        assert step in shown.stdout
    as_json = json.loads(tasker(server, "task", "show", task_id, "--json").stdout)
    assert as_json["status"] == "complete" and len(as_json["workflow_steps"]) == 4
    listed = tasker(
        server,
        "tasks",
        "list",
        "--namespace",
        "payments",
        "--status",
        "complete",
        "--per-page",
        "100",
    )
    assert listed.returncode == 0 and task_id in listed.stdout
    page = json.loads(tasker(server, "tasks", "list", "--per-page", "1", "--json").stdout)
    assert page["pagination"]["per_page"] == 1 and len(page["tasks"]) == 1


def test_watch_exits_1_on_error_then_retry_and_cancel(server: Server, gate: Path) -> None:
    created = tasker(
        server,
        "task",
        "create",
        "people_tests",
        "gated",
        "--context",
        json.dumps({"gate": str(gate)}),
        "--json",
    )
    task_id = json.loads(created.stdout)["id"]
    watched = tasker(server, "task", "watch", task_id)
    assert watched.returncode == 1
    assert "the gate gate is closed" in watched.stdout
    gate.touch()
    retried = tasker(server, "task", "retry", task_id)
    assert retried.returncode == 0 and task_id in retried.stdout
    assert tasker(server, "task", "watch", task_id).returncode == 0
    again = tasker(server, "task", "retry", task_id)  # nothing failed any more
    assert again.returncode == 1
    assert again.stderr.startswith("Error: Cannot move task from 'complete'")
    assert "Traceback" not in again.stderr

    slow = tasker(
        server,
        "task",
        "create",
        "payments",
        "process_payment",
        "--context",
        '{"payment_id": 1, "simulate_sleep": {"validate_payment": 10}}',
    )
    slow_id = slow.stdout.split()[0]
    cancelled = tasker(server, "task", "cancel", slow_id)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    assert tasker(server, "task", "watch", slow_id).returncode == 1


def test_errors_are_one_line_without_traceback_unless_debug(server: Server) -> None:
    missing = tasker(server, "task", "show", str(uuid.uuid4()))
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: Task '") and "[TASK_NOT_FOUND]" in missing.stderr
    assert "Traceback" not in missing.stderr
    debug = tasker(server, "task", "show", str(uuid.uuid4()), "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "NotFoundError" in debug.stderr

    invalid = tasker(server, "task", "create", "payments", "process_payment", "--context", "{}")
    assert invalid.returncode == 1
    assert "Invalid task configuration" in invalid.stderr and "context.payment_id" in invalid.stderr

    bad_json = tasker(server, "task", "create", "payments", "process_payment", "--context", "{")
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr

    unknown = tasker(server, "task", "create", "payments", "nope", "--context", "{}")
    assert unknown.returncode == 1 and "HANDLER_NOT_FOUND" in unknown.stderr


def test_url_and_token_from_flags_or_environment(server: Server) -> None:
    nowhere = tasker(server, "tasks", "list", "--url", "http://127.0.0.1:9", TASKER_URL="")
    assert nowhere.returncode == 1 and nowhere.stderr.startswith("Error: cannot reach")
    by_env = tasker(server, "tasks", "list", TASKER_TOKEN="not-checked-when-auth-is-off")
    assert by_env.returncode == 0
    by_flag = tasker(server, "tasks", "list", "--url", server.url, TASKER_URL="http://127.0.0.1:9")
    assert by_flag.returncode == 0
