"""The seed's JavaScript TaskerClient (axios, unchanged) against a real `tasker serve` process.

Runs `node tests/js/drive.js` against uvicorn on a free port with a temporary SQLite database
and the bundled examples. Skipped only when node is not installed; axios comes from
tests/js/package.json (installed here with npm when missing).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.rest_support import assert_same_shape, snapshot

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def axios_installed() -> None:
    if (JS / "node_modules" / "axios").is_dir():
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed to install axios for the JavaScript client test"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tasker serve --examples` on a free port; yields its base URL."""
    port = free_port()
    db = tmp_path_factory.mktemp("js-client") / "tasker.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    env.update(TASKER_DATABASE_URL=f"sqlite://{db}", TASKER_LOG_LEVEL="WARNING")
    tasker = Path(sys.executable).parent / "tasker"
    log = db.with_name("serve.log")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(tasker), "serve", "--examples", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/tasker"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/handlers", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tasker serve did not come up"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def driven(axios_installed: None, server: str) -> dict[str, Any]:
    """What `node tests/js/drive.js` printed after running the seed's usage lines."""
    node = shutil.which("node")
    assert node
    result = subprocess.run(
        [node, str(JS / "drive.js"), server],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_the_seed_client_discovers_creates_and_draws(driven: dict[str, Any]) -> None:
    out = driven

    assert out["namespaces"] == snapshot("seed_namespaces")["namespaces"]
    assert [h["id"] for h in out["handlers"]][:2] == ["process_payment", "refund_payment"]
    assert_same_shape(out["handlerDetails"], snapshot("seed_handler_detail"))
    assert out["latest"]["version"] == "2.1.0"
    assert_same_shape(out["task"], snapshot("seed_create_task_response"))
    assert out["task"]["context"] == {"payment_id": 123}
    assert_same_shape(out["withDependencies"], snapshot("seed_task_with_dependencies"))
    assert out["withDependencies"]["status"] == "complete"
    assert_same_shape(out["diagram"], snapshot("seed_task_diagram"))
    assert out["diagram"]["title"] == "payments.process_payment@2.1.0"
    assert out["diagramPageStart"] == "<!doctype html>"
    assert out["notFound"] == {
        "status": 404,
        "body": snapshot("seed_error_handler_not_found"),
    }


def test_the_seed_client_monitoring_calls_answer(driven: dict[str, Any]) -> None:
    # Analytics, health and metrics are other work: absent (404) is tolerated, failing is not.
    assert set(driven["optional"]) == {"performance", "bottlenecks", "health", "metrics"}
    assert set(driven["optional"].values()) <= {"present", "absent"}, driven["optional"]
