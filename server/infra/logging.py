"""Structured logs: one JSON object per line (with `TASKER_LOG_JSON`), and correlation ids.

Two context variables follow the work through `await`s: `request_id` (set per HTTP request
or websocket by `RequestIdMiddleware`) and `task_id` / `step` (set around each step attempt
by the runner with `bind`). `ContextFilter` copies them onto every log record, so both the
JSON and the plain text format show them, whichever library logged.
"""

import contextlib
import json
import logging
import logging.config
import random
import re
import traceback
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from server.config import Settings
from server.infra.access_log import AccessSampler

request_id_var: ContextVar[str | None] = ContextVar("tasker_log_request_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("tasker_log_task_id", default=None)
step_var: ContextVar[str | None] = ContextVar("tasker_log_step", default=None)

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Attributes every LogRecord has; anything else on a record came from `extra=` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextlib.contextmanager
def bind(*, task_id: str | None = None, step: str | None = None) -> Iterator[None]:
    """Tag log records emitted inside the block with this task (and step)."""
    tokens = [task_id_var.set(task_id), step_var.set(step)]
    try:
        yield
    finally:
        step_var.reset(tokens[1])
        task_id_var.reset(tokens[0])


class ContextFilter(logging.Filter):
    """Puts the correlation ids on each record (None when outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.task_id = task_id_var.get()
        record.step = step_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "request_id"?, "task_id"?, "step"?, ...extra}`."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(data, default=str)


class RedactQueryFilter(logging.Filter):
    """Drops the query string from uvicorn's access log lines: it may carry a token
    (`?access_token=`) or other secrets a client put in a URL, and logs outlive them."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn.access logs (client, method, path with query, http version, status).
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, mark, _query = args[2].partition("?")
            if mark:
                record.args = (args[0], args[1], f"{path}?[redacted]", *args[3:])
        return True


def redact_access_log() -> None:
    """Put `RedactQueryFilter` on uvicorn's access logger (once), however uvicorn was started."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryFilter) for f in access.filters):
        access.addFilter(RedactQueryFilter())


TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s task=%(task_id)s]: %(message)s"
)


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` for a server or worker process: level, format, ids.

    Also handed to uvicorn as `log_config`, which applies it in every worker process it spawns.
    Library loggers (uvicorn, dramatiq) lose their own handlers and propagate to the root.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": ContextFilter},
            "redact_query": {"()": RedactQueryFilter},
            "sample_access": {"()": AccessSampler, "rate": settings.access_log_sample},
        },
        "formatters": {"json": {"()": JsonFormatter}, "text": {"format": TEXT_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "filters": ["context"],
                "formatter": "json" if settings.log_json else "text",
            }
        },
        "root": {"handlers": ["stderr"], "level": settings.log_level.upper()},
        "loggers": {
            **{
                name: {"handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "dramatiq")
            },
            "uvicorn.access": {
                "handlers": [],
                "propagate": True,
                "filters": ["sample_access", "redact_query"],  # sampled first: cheaper
            },
        },
    }


def configure_logging(settings: Settings) -> None:
    """Apply `logging_config` to this process."""
    logging.config.dictConfig(logging_config(settings))


def new_request_id() -> str:
    """32 random hex digits. Correlation, not security: uuid4 reads os.urandom, a system call
    per request that cost 4 % of a single-task read."""
    return f"{random.getrandbits(128):032x}"


class RequestIdMiddleware:
    """Gives each HTTP request and websocket an id: the caller's `X-Request-ID` when it is a
    short safe token, else a new one. Sets `request_id_var` and `scope["state"]["request_id"]`
    and echoes the id in the response's `X-Request-ID` header. Plain ASGI (streams stay
    streaming)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # A scan of the raw pairs, not a dict of every header: this runs on every request.
        offered = next((v for k, v in scope.get("headers") or () if k == REQUEST_ID_HEADER), b"")
        request_id = (
            offered.decode() if offered and _SAFE_ID.fullmatch(offered) else new_request_id()
        )
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER
                ]
                message["headers"] = [*headers, (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
