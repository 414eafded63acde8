"""The rules every input obeys, however it came in (REST, GraphQL, the Python client, the CLI).

The services check them before anything is stored or queried, so a value one surface accepts
no other refuses, and a value the database cannot hold is a 422 / `ValidationError`, never a
500. Why each rule:

- No NUL (U+0000) in any string or JSON key: PostgreSQL's text and jsonb cannot store it (the
  insert fails), while SQLite would store it, so the same request would succeed or fail by
  backend. No lone surrogate (`"\\ud800"` in JSON) either: it has no UTF-8 form, so no
  database can store it.
- Lengths follow the database columns (`server.db.models`): VARCHAR(255) for idempotency
  keys, initiator and source system, VARCHAR(128) for names, VARCHAR(64) for versions.
- JSON integers are signed 64-bit. PostgreSQL's jsonb would keep any precision, but JSON
  columns are written through orjson (which refuses integers beyond 64 bits: that was the
  500) and SQLite's JSON functions read an integer beyond 2**63 - 1 as an inexact REAL. The
  signed 64-bit range is what every layer, on both backends, round-trips exactly.
- JSON numbers are finite: JSON has no NaN or Infinity (and `1e400` parses as Infinity);
  they were silently stored as null.
- JSON documents are at most `MAX_JSON_DEPTH` levels deep and `MAX_JSON_BYTES` encoded, so
  every reader (JSON Schema validation, encoders, clients) can handle what was stored.

Pure Python: the adapters' own schemas (OpenAPI, GraphQL) quote these constants.
"""

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_KEY_LENGTH = 255
"""Idempotency keys, initiator, source system and tags (VARCHAR(255) columns)."""
MAX_NAME_LENGTH = 128
"""Namespaces and handler names (VARCHAR(128))."""
MAX_VERSION_LENGTH = 64
"""Handler versions (VARCHAR(64))."""
MAX_REASON_LENGTH = 10_000
"""A task's or a resolution's reason (a TEXT column: bounded so a record stays readable)."""
MAX_TAGS = 100
"""Labels on one task."""
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**63 - 1
MAX_JSON_DEPTH = 64
"""Nesting levels of arrays and objects in a context, inputs or results."""
MAX_JSON_BYTES = 1024 * 1024
"""Size of a context, inputs or results encoded as compact UTF-8 JSON."""
MAX_PROBLEMS = 10
"""Problems reported per field, and fields reported per request: a huge bad document does
not make a huge answer."""

MAX_DELAY_SECONDS = 366 * 24 * 3600
"""A delayed start is at most a year (and a day) away: further is more likely a unit mistake
(milliseconds for seconds) than a plan, and the broker would hold the message that long."""

NUL = "\x00"
NO_NUL = "must not contain NUL characters"
NOT_UNICODE = "must be valid Unicode (no lone surrogates)"


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored, or None."""
    if NUL in value:
        return NO_NUL
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return NOT_UNICODE
    return None


class InputProblems:
    """Collects what is wrong with a request, field by field (`details` of a ValidationError)."""

    def __init__(self) -> None:
        self.details: dict[str, list[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.details)

    def add(self, field: str, message: str) -> None:
        if field not in self.details and len(self.details) >= MAX_PROBLEMS:
            return
        messages = self.details.setdefault(field, [])
        if len(messages) < MAX_PROBLEMS and message not in messages:
            messages.append(message)

    def text(self, field: str, value: str | None, max_length: int | None = None) -> None:
        """A string without NUL and, when `max_length` is given, at most that long."""
        if value is None:
            return
        problem = text_problem(value)
        if problem:
            self.add(field, problem)
        if max_length is not None and len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters")

    def texts(
        self,
        field: str,
        values: Iterable[str] | None,
        max_length: int | None = None,
        max_items: int | None = None,
    ) -> None:
        """A list of strings, each checked like `text` (problems are named by index)."""
        if values is None:
            return
        items = list(values)
        if max_items is not None and len(items) > max_items:
            self.add(field, f"must have at most {max_items} items")
        for i, value in enumerate(items):
            self.text(f"{field}[{i}]", value, max_length)

    def json(self, field: str, value: Any) -> None:
        """A JSON document: no NUL, 64-bit integers, finite numbers, bounded depth and size."""
        if not self._json_values(field, value):
            return  # only a document that can be encoded has a size
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_JSON_BYTES:
            self.add(field, f"must be at most {MAX_JSON_BYTES} bytes as JSON")

    def _json_values(self, field: str, value: Any) -> bool:
        """Walks the document without recursion, reporting each bad value by its path;
        True if there was none."""
        clean = True
        stack: list[tuple[str, Any, int]] = [(field, value, 0)]
        while stack:
            where, item, depth = stack.pop()
            problem: str | None = None
            if isinstance(item, str):
                problem = text_problem(item)
            elif isinstance(item, bool) or item is None:
                continue
            elif isinstance(item, int):
                if not MIN_JSON_INT <= item <= MAX_JSON_INT:
                    problem = f"must be an integer from {MIN_JSON_INT} to {MAX_JSON_INT}"
            elif isinstance(item, float):
                if not math.isfinite(item):
                    problem = "must be a finite number"
            elif depth >= MAX_JSON_DEPTH and isinstance(item, Mapping | list | tuple):
                where = field
                problem = f"must not be nested more than {MAX_JSON_DEPTH} levels deep"
            elif isinstance(item, Mapping):
                for key, child in item.items():
                    if key_problem := text_problem(str(key)):
                        self.add(where, "keys " + key_problem)
                        clean = False
                    stack.append((f"{where}.{key}", child, depth + 1))
            elif isinstance(item, list | tuple):
                stack.extend((f"{where}[{i}]", child, depth + 1) for i, child in enumerate(item))
            if problem:
                self.add(where, problem)
                clean = False
        return clean


def start_time(
    problems: InputProblems,
    run_at: str | datetime | None,
    delay_seconds: float | None,
    now: datetime,
) -> datetime | None:
    """When a task asked to start later may start: None for at once (nothing asked, or a
    `run_at` already past). Problems go to `problems` (the result is then meaningless).

    `run_at` is ISO 8601 with a time zone: without one the instant would depend on the
    server's zone. Not both fields: which one wins would be a guess."""
    if run_at is not None and delay_seconds is not None:
        problems.add("run_at", "give run_at or delay_seconds, not both")
        return None
    if delay_seconds is not None:
        if (
            isinstance(delay_seconds, bool)
            or not isinstance(delay_seconds, int | float)
            or not math.isfinite(delay_seconds)
        ):
            problems.add("delay_seconds", "must be a number of seconds")
        elif delay_seconds < 0:
            problems.add("delay_seconds", "must not be negative")
        elif delay_seconds > MAX_DELAY_SECONDS:
            problems.add("delay_seconds", f"must be at most {MAX_DELAY_SECONDS} seconds")
        else:
            return now + timedelta(seconds=delay_seconds) if delay_seconds > 0 else None
        return None
    if run_at is None:
        return None
    if isinstance(run_at, str) and (problem := text_problem(run_at)):
        problems.add("run_at", problem)
        return None
    moment = aware_time(run_at)
    if moment is None:
        problems.add(
            "run_at",
            "must be an ISO 8601 date and time with a time zone, e.g. 2027-01-31T09:00:00Z",
        )
        return None
    if moment - now > timedelta(seconds=MAX_DELAY_SECONDS):
        problems.add("run_at", f"must be at most {MAX_DELAY_SECONDS} seconds from now")
        return None
    return moment if moment > now else None


def aware_time(value: datetime | str) -> datetime | None:
    """`value` (an ISO 8601 text or a datetime) as a UTC time, or None when it does not parse or
    has no time zone. UTC because Python takes offsets up to ±23:59 and PostgreSQL only up to
    ±15:59: `+16:51` is a valid ISO time that PostgreSQL refuses, so it is converted here, never
    sent as written. A valid time that leaves the calendar when converted (year 1 at a positive
    offset, year 9999 at a negative one) is the calendar's first or last moment: every stored
    time lies between them, so a filter bound, a start or a wake time means the same."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if value.tzinfo is None or value.utcoffset() is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        if value.year == 1:
            return datetime.min.replace(tzinfo=UTC)
        return datetime.max.replace(tzinfo=UTC)


def text_filter_problems(filters: Mapping[str, str | None]) -> dict[str, list[str]]:
    """Problems with the string filters of a list query: no NUL (a longer filter than any
    column simply matches nothing, so length is not a problem)."""
    problems = InputProblems()
    for name, value in filters.items():
        problems.text(name, value)
    return problems.details
