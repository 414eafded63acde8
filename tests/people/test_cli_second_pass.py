"""The task commands' second pass, run as a person runs them: subprocesses against a server.

`tasks list` readable at 80 columns and scriptable (`--output json|ids`); `task show` with the
step tree, a timeline and the failed step's error class; `task events` printing the history
and following it.
"""

import json
import re
import uuid
from pathlib import Path

from server.client import TaskerClient
from tests.people.conftest import Server
from tests.people.test_cli_tasks import tasker

NARROW = {"COLUMNS": "80"}
ORDER = {"order_id": 7, "items": [{"sku": "SKU-1", "quantity": 2}]}  # 45 in stock: completes


def created(server: Server, namespace: str, name: str, context: dict[str, object]) -> str:
    with TaskerClient(server.url) as client:
        task_id = client.create_task(namespace, name, context)["id"]
        client.wait_for_task(task_id, timeout=30, poll=0.1)
    return task_id


def test_list_at_80_columns_shows_every_id_whole(server: Server) -> None:
    mine = {created(server, "payments", "process_payment", {"payment_id": 80}),
            created(server, "inventory", "process_order", ORDER)}  # fmt: skip
    run = tasker(server, "tasks", "list", "--per-page", "100", **NARROW)
    assert run.returncode == 0, run.stderr
    with TaskerClient(server.url) as client:
        listed = [t["id"] for t in client.list_tasks(per_page=100)["tasks"]]
    assert mine <= set(listed)
    shown = set(re.findall(r"^([0-9a-f-]{36}) ", run.stdout, flags=re.MULTILINE))
    assert shown == set(listed)  # every id, whole, at the start of its row
    assert all(len(line) <= 80 for line in run.stdout.splitlines())
    assert "complete" in run.stdout and "c…" not in run.stdout  # the status is not cut either


def test_list_output_json_and_ids_for_scripts(server: Server) -> None:
    task_id = created(server, "payments", "process_payment", {"payment_id": 81})
    as_json = tasker(server, "tasks", "list", "--per-page", "100", "--output", "json", **NARROW)
    assert as_json.returncode == 0, as_json.stderr
    page = json.loads(as_json.stdout)
    row = next(t for t in page["tasks"] if t["id"] == task_id)
    assert row["status"] == "complete" and row["full_name"] == "payments.process_payment@2.1.0"
    assert page["pagination"]["per_page"] == 100
    shorthand = tasker(server, "tasks", "list", "--per-page", "100", "--json")
    assert json.loads(shorthand.stdout)["tasks"][0].keys() == page["tasks"][0].keys()

    ids = tasker(server, "tasks", "list", "--per-page", "100", "-o", "ids", **NARROW)
    assert ids.returncode == 0, ids.stderr
    lines = ids.stdout.splitlines()
    assert lines == [t["id"] for t in page["tasks"]]  # one id a line, nothing else
    for line in lines:
        uuid.UUID(line)
    only = tasker(server, "tasks", "list", "--status", "complete", "--output", "ids")
    assert task_id in only.stdout.splitlines()
    bad = tasker(server, "tasks", "list", "--output", "yaml")
    assert bad.returncode == 2 and "yaml" in bad.stderr


def test_show_draws_the_step_tree_and_a_timeline(server: Server) -> None:
    task_id = created(server, "inventory", "process_order", ORDER)  # a diamond
    run = tasker(server, "task", "show", task_id, **NARROW)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert all(len(line) <= 80 for line in out.splitlines())
    tree = out[out.index("steps\n└── ") :]
    assert re.search(r"^└── validate_order  complete", tree, flags=re.MULTILINE)
    assert re.search(r"^    ├── reserve_stock  complete", tree, flags=re.MULTILINE)
    assert re.search(r"^    │   └── create_shipment  complete", tree, flags=re.MULTILINE)
    assert re.search(r"^    └── calculate_shipping  complete", tree, flags=re.MULTILINE)
    # the join is drawn once, and marked where its second parent meets it
    assert "create_shipment  ↑ shared, shown under reserve_stock" in tree

    timeline = out[out.index("timeline  0 → ") :].splitlines()
    bars = {line.split()[0]: line for line in timeline[1:] if "█" in line}
    assert set(bars) == {"validate_order", "reserve_stock", "calculate_shipping",
                         "create_shipment"}  # fmt: skip
    first = bars["validate_order"].index("█")
    assert bars["create_shipment"].index("█") > first  # later steps start further right
    assert all(re.search(r"\d+(\.\d)? m?s$", line) for line in bars.values())

    as_json = json.loads(tasker(server, "task", "show", task_id, "--output", "json").stdout)
    steps = {step["name"]: step for step in as_json["workflow_steps"]}
    assert steps["create_shipment"]["parents"] == ["reserve_stock", "calculate_shipping"]


def test_show_names_the_error_class_of_a_failed_step(server: Server, gate: Path) -> None:
    task_id = created(server, "people_tests", "gated", {"gate": str(gate)})
    run = tasker(server, "task", "show", task_id, COLUMNS="200")
    assert run.returncode == 0, run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith("pass_gate "))
    assert "GATE_CLOSED: the gate gate is closed" in row


def test_events_print_the_whole_history_of_a_finished_task(server: Server) -> None:
    context = {"payment_id": 82, "simulate_failures": {"charge_card": 1}}
    task_id = created(server, "payments", "process_payment", context)
    with TaskerClient(server.url) as client:
        streamed = [f.data for f in client.events(task_id) if f.event == "message"]
    run = tasker(server, "task", "events", task_id, **NARROW)
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("#")]
    assert len(rows) == len(streamed)
    pattern = r"^#(\d+)  (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})  (\w+) +(\S+) → (\w+)"
    for row, event in zip(rows, streamed, strict=True):
        number, when, step, before, after = re.match(pattern, row).groups()  # type: ignore[union-attr]
        assert int(number) == event["cursor"]
        assert when.replace(" ", "T") + "Z" == event["occurred_at"]
        assert step == (event["step_name"] or "task")
        assert (before, after) == (event["from_status"] or "—", event["to_status"])
    assert "charge_card" in run.stdout and "in_progress → error" in run.stdout
    assert rows[-1].endswith("in_progress → complete  all steps done")

    as_json = tasker(server, "task", "events", task_id, "--output", "json")
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == streamed
    middle = streamed[len(streamed) // 2]["cursor"]
    later = tasker(server, "task", "events", task_id, "--after", str(middle), "--json")
    assert [json.loads(line)["cursor"] for line in later.stdout.splitlines()] == [
        e["cursor"] for e in streamed if e["cursor"] > middle
    ]


def test_events_follow_until_the_task_ends(server: Server, gate: Path) -> None:
    with TaskerClient(server.url) as client:
        slow = client.create_task(
            "payments", "process_payment", {"payment_id": 83, "simulate_sleep": {"update_order": 2}}
        )["id"]
    run = tasker(server, "task", "events", slow, "--follow", **NARROW)
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("#")]
    assert any("update_order" in row and "in_progress → complete" in row for row in rows)
    assert rows[-1].endswith("all steps done")  # it ran on until the task completed
    numbers = [int(row.split()[0][1:]) for row in rows]
    assert numbers == sorted(set(numbers))  # no transition printed twice

    failing = created(server, "people_tests", "gated", {"gate": str(gate)})
    followed = tasker(server, "task", "events", failing, "--follow", "--json")
    assert followed.returncode == 1
    assert json.loads(followed.stdout.splitlines()[-1])["to_status"] == "error"


def test_events_of_an_unknown_task_is_one_line_error(server: Server) -> None:
    missing = tasker(server, "task", "events", str(uuid.uuid4()), "--follow")
    assert missing.returncode == 1 and "[TASK_NOT_FOUND]" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_timeline_bars_are_scaled_to_the_width_and_the_tree_marks_a_join() -> None:
    from rich.console import Console

    from server.cli.steps_view import step_tree, timeline

    def step(name: str, start: int | None, end: int | None, parents: list[str]) -> dict:
        at = "2026-01-01T00:00:{:02d}.000Z".format
        return {"name": name, "status": "complete" if end is not None else "pending",
                "started_at": None if start is None else at(start),
                "completed_at": None if end is None else at(end), "parents": parents,
                "children": {"a": ["b", "c"], "b": ["d"], "c": ["d"]}.get(name, [])}  # fmt: skip

    steps = [step("a", 0, 2, []), step("b", 2, 10, ["a"]), step("c", 2, 4, ["a"]),
             step("d", None, None, ["b", "c"])]  # fmt: skip
    task = {"created_at": "2026-01-01T00:00:00.000Z", "completed_at": "2026-01-01T00:00:10Z"}
    console = Console(width=80, record=True, color_system=None)
    console.print(timeline(task, steps, 80))  # type: ignore[arg-type]
    console.print(step_tree(steps))  # type: ignore[arg-type]
    lines = console.export_text().splitlines()
    assert lines[0] == "timeline  0 → 10.0 s after the task was created"
    bars = {line[0]: line[3 : line.rindex(" ", 0, -3)].rstrip() for line in lines[1:4]}
    assert all(len(line) <= 80 for line in lines)
    cells = len(bars["a"])
    assert bars["a"].startswith("█") and bars["b"].endswith("█")  # 0 s on the left, 10 s right
    assert bars["b"].index("█") == bars["c"].index("█") == round(cells * 0.2)
    assert abs(bars["c"].count("█") - cells * 0.2) <= 1
    assert lines[1].endswith(" 2.0 s") and lines[2].endswith(" 8.0 s")
    tree = lines[lines.index("steps") :]
    assert tree[1:] == [
        "└── a  complete  2.0 s",
        "    ├── b  complete  8.0 s",
        "    │   └── d  pending",
        "    └── c  complete  2.0 s",
        "        └── d  ↑ shared, shown under b",
    ]
