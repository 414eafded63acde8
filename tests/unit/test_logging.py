"""Structured logs: JSON lines carrying the request and task correlation ids."""

import io
import json
import logging

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.config import Settings
from server.infra.logging import (
    ContextFilter,
    JsonFormatter,
    RequestIdMiddleware,
    bind,
    configure_logging,
    request_id_var,
)


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tasker.test.logging")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def test_json_lines_carry_task_ids_and_extras():
    logger, stream = capture()
    with bind(task_id="t-1", step="charge"):
        logger.info("step %s done", "charge", extra={"attempt": 2})
    logger.info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "step charge done" and first["level"] == "INFO"
    assert (first["task_id"], first["step"], first["attempt"]) == ("t-1", "charge", 2)
    assert "task_id" not in second and "request_id" not in second


def test_exceptions_are_one_json_line():
    logger, stream = capture()
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    [line] = stream.getvalue().splitlines()
    assert "ValueError: boom" in json.loads(line)["exception"]


async def test_request_ids_are_echoed_or_made_and_reach_the_logs():
    logger, stream = capture()

    async def endpoint(request: Request) -> JSONResponse:
        logger.info("handling")
        return JSONResponse({"seen": request_id_var.get()})

    app = RequestIdMiddleware(Starlette(routes=[Route("/x", endpoint)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        given = await client.get("/x", headers={"X-Request-ID": "abc-123"})
        made = await client.get("/x", headers={"X-Request-ID": "not ok!"})
    assert given.headers["x-request-id"] == "abc-123" == given.json()["seen"]
    assert made.headers["x-request-id"] != "not ok!" and len(made.headers["x-request-id"]) == 32
    ids = [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()]
    assert ids == ["abc-123", made.headers["x-request-id"]]
    assert request_id_var.get() is None


def test_configure_logging_installs_one_json_handler():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(Settings(log_json=True, log_level="WARNING"))
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert root.level == logging.WARNING
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
