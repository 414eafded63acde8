"""/tasker/api-docs.json as third-party Python tooling reads it, against a real server.

openapi-spec-validator checks the served document; openapi-python-client generates a client
from it (every operation, no warning), and that generated client creates and reads a task on
a `tasker serve` process.
"""

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from rest_compat import observability
from rest_compat.openapi import build_document
from rest_compat.routes import DOCUMENTED
from tests.people.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PACKAGE = "tasker_generated_client"
CONTEXT = {"payment_id": 12345, "amount": 99.99, "currency": "USD", "customer_id": 67890}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`tasker serve` on a free loopback port (embedded workers, the bundled examples)."""
    process, running = start_server(tmp_path_factory.mktemp("openapi-tools"))
    try:
        yield running
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def document(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    response = httpx.get(f"{server.url}/tasker/api-docs.json", timeout=10)
    assert response.status_code == 200
    path = tmp_path_factory.mktemp("openapi-document") / "api-docs.json"
    path.write_bytes(response.content)
    return path


@pytest.fixture(scope="module")
def generated(document: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client openapi-python-client generates from the served document, imported."""
    where = tmp_path_factory.mktemp("generated-client")
    # The generator formats its output with ruff, which lives beside this interpreter.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(document),
         "--output-path", str(where / PACKAGE), "--meta", "none"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # It skips what it cannot read with a warning ("Endpoint will not be generated").
    assert "warning" not in output.lower(), output
    assert "Unable to" not in output, output
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_the_served_document_is_valid_openapi_3_1(document: Path) -> None:
    doc = json.loads(document.read_text())
    assert doc["openapi"].startswith("3.1")
    validate(doc, cls=OpenAPIV31SpecValidator)  # raised RecursionError on a recursive schema
    assert "JsonValue" not in doc["components"]["schemas"]


@pytest.mark.parametrize("waived", [frozenset(), frozenset({"tasker.metrics:index"})])
@pytest.mark.parametrize("auth_required", [False, True])
def test_the_document_is_valid_in_every_configuration(
    auth_required: bool, waived: frozenset[str]
) -> None:
    doc = build_document(
        [*DOCUMENTED, *observability.public_operations], auth_required=auth_required, waived=waived
    )
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_every_operation_is_generated(document: Path, generated: ModuleType) -> None:
    doc = json.loads(document.read_text())
    root = Path(generated.__file__ or "").parent
    missing = [
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if not (root / "api" / op["tags"][0] / f"{op['operationId']}.py").is_file()
    ]
    assert missing == []


def test_the_generated_client_creates_and_reads_a_task(
    server: Server, generated: ModuleType
) -> None:
    client_module = importlib.import_module(f"{PACKAGE}.client")
    models = importlib.import_module(f"{PACKAGE}.models")
    create_task = importlib.import_module(f"{PACKAGE}.api.tasks.create_task")
    show_task = importlib.import_module(f"{PACKAGE}.api.tasks.show_task")
    list_steps = importlib.import_module(f"{PACKAGE}.api.workflow_steps.list_steps")
    update_step = importlib.import_module(f"{PACKAGE}.api.workflow_steps.update_step")

    with client_module.Client(base_url=server.url, raise_on_unexpected_status=True) as client:
        drive(client, models, create_task, show_task, list_steps, update_step)


def drive(client: Any, models: Any, *api: Any) -> None:
    """Create a task, read it until complete, then change and list its steps."""
    create_task, show_task, list_steps, update_step = api
    body = models.CreateTaskBody(
        name="process_payment",
        namespace="payments",
        version="2.1.0",
        context=models.CreateTaskBodyContext.from_dict(CONTEXT),
    )
    created = create_task.sync_detailed(client=client, body=body)
    assert created.status_code == 201
    task = created.parsed
    assert isinstance(task, models.TaskOut)
    assert task.full_name == "payments.process_payment@2.1.0"
    assert task.context == CONTEXT
    assert isinstance(task.context["payment_id"], int)  # an integer stays an integer

    read: Any = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        read = show_task.sync(id=task.id, client=client, include_dependencies=True)
        if isinstance(read, models.TaskWithDependencies) and read.status == "complete":
            break
        time.sleep(0.2)
    assert isinstance(read, models.TaskWithDependencies), read
    assert read.status == "complete"
    assert read.id == task.id
    assert read.dependencies.blocked_steps == []
    assert "validate_payment" in read.dependencies.completed_steps
    assert [s.name for s in read.steps][:2] == ["validate_payment", "charge_card"]

    # An operation the generator used to skip: its body holds free-form JSON.
    update = models.UpdateStepBody.from_dict({"retry_limit": 5, "inputs": {"timeout": 30}})
    step = update_step.sync(task_id=task.id, step_id="charge_card", client=client, body=update)
    assert isinstance(step, models.StepOut)
    assert step.retry_limit == 5
    assert step.inputs == {"timeout": 30}
    listed = list_steps.sync(task_id=task.id, client=client)
    assert isinstance(listed, models.StepList)
    assert {s.name for s in listed.workflow_steps} >= {"validate_payment", "charge_card"}
