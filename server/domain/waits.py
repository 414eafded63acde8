"""Durable sleep and signal waits: the built-in step kinds `sleep` and `wait_for` (pure rules).

A step of these kinds runs no handler. When a worker first claims it, the engine
(`server.engine.builtin_steps`) either finishes it at once or parks it: back to `pending` with
a wake time (`wake_at`) before which no claim succeeds, and one message delayed until then. So
a sleeping or waiting step holds no worker thread and nothing polls it.

Paths (`sleep.until`) follow the key-expression rules: `context.<path>` is checked when the
task is created, `parents.<step>.results.<path>` only when the step runs (`BAD_PATH` then).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from server.domain.inputs import aware_time

SLEEP = "sleep"
WAIT_FOR = "wait_for"
KINDS = (SLEEP, WAIT_FOR)
BUILTIN_PREFIX = "tasker:"
"""Built-in steps store `tasker:<kind>` as their handler class: no class is imported."""

ON_TIMEOUT = ("fail", "skip")
MAX_WAIT_SECONDS = 366 * 24 * 3600
"""Like a delayed start: longer is more likely a unit mistake than a plan."""
NO_DEADLINE = datetime(9999, 1, 1, tzinfo=UTC)
"""The wake time of a signal wait without a timeout: only a signal ends it."""

BAD_PATH = "BAD_PATH"
SIGNAL_TIMEOUT = "SIGNAL_TIMEOUT"
REASON_SIGNAL = "signal"
REASON_TIMEOUT = "timeout"
REASON_SLEEPING = "sleeping"
REASON_WAITING = "waiting for signal"
REASON_WOKE = "woke"


@dataclass(frozen=True, slots=True)
class SleepSpec:
    """`sleep: {seconds: N}` or `sleep: {until: <path>}`."""

    seconds: float | None = None
    until: str | None = None


@dataclass(frozen=True, slots=True)
class WaitSpec:
    """`wait_for: {signal: NAME, timeout_seconds: N, on_timeout: fail|skip}`."""

    signal: str
    timeout_seconds: float | None = None
    on_timeout: str = "fail"


def builtin_class(kind: str) -> str:
    """The handler class stored for a built-in step of `kind`."""
    return f"{BUILTIN_PREFIX}{kind}"


def builtin_kind(handler_class: str) -> str | None:
    """The built-in kind a stored handler class names, or None for a real handler."""
    if handler_class.startswith(BUILTIN_PREFIX):
        kind = handler_class[len(BUILTIN_PREFIX) :]
        return kind if kind in KINDS else None
    return None


def _seconds(value: object, what: str, problems: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"'{what}' must be a number of seconds")
    elif value < 0:
        problems.append(f"'{what}' must not be negative")
    elif value > MAX_WAIT_SECONDS:
        problems.append(f"'{what}' must be at most {MAX_WAIT_SECONDS} seconds")
    else:
        return float(value)
    return None


def _unknown(raw: Mapping[str, Any], allowed: tuple[str, ...], kind: str) -> list[str]:
    return [
        f"'{kind}' has unknown key '{k}' (allowed: {', '.join(allowed)})"
        for k in raw
        if k not in allowed
    ]


def parse_sleep(raw: object) -> tuple[SleepSpec | None, list[str]]:
    """The spec of a `sleep:` block, or the problems with it."""
    if not isinstance(raw, dict):
        return None, ["'sleep' must be a mapping: {seconds: N} or {until: <path>}"]
    problems = _unknown(raw, ("seconds", "until"), SLEEP)
    if ("seconds" in raw) == ("until" in raw):
        problems.append("'sleep' takes exactly one of 'seconds' or 'until'")
        return None, problems
    seconds = until = None
    if "seconds" in raw:
        seconds = _seconds(raw["seconds"], "sleep.seconds", problems)
    else:
        until = raw["until"]
        if path_problem := check_path(until):
            problems.append(f"'sleep.until' {path_problem}")
    return (None if problems else SleepSpec(seconds, until)), problems


def parse_wait(raw: object) -> tuple[WaitSpec | None, list[str]]:
    """The spec of a `wait_for:` block, or the problems with it."""
    if not isinstance(raw, dict):
        return None, ["'wait_for' must be a mapping: {signal: NAME, timeout_seconds: N}"]
    problems = _unknown(raw, ("signal", "timeout_seconds", "on_timeout"), WAIT_FOR)
    signal = raw.get("signal")
    if not isinstance(signal, str) or not signal.strip() or len(signal) > 255:
        problems.append("'wait_for.signal' must be a non-empty name (at most 255 characters)")
    timeout = None
    if raw.get("timeout_seconds") is not None:
        timeout = _seconds(raw["timeout_seconds"], "wait_for.timeout_seconds", problems)
    on_timeout = raw.get("on_timeout", "fail")
    if on_timeout not in ON_TIMEOUT:
        problems.append(f"'wait_for.on_timeout' must be one of {', '.join(ON_TIMEOUT)}")
    if problems:
        return None, problems
    return WaitSpec(str(signal), timeout, str(on_timeout)), []


def check_path(path: object) -> str | None:
    """Why `path` is not a usable time path (None when it is)."""
    if not isinstance(path, str) or not path:
        return "must be a path such as context.send_at or parents.<step>.results.<key>"
    parts = path.split(".")
    if parts[0] == "context" and len(parts) >= 2 and all(parts[1:]):
        return None
    if parts[0] == "parents" and len(parts) >= 3 and all(parts[1:]):
        return None
    return f"'{path}' must start with context.<key> or parents.<step>.<key>"


_MISSING = object()


def lookup(path: str, context: Any, parents: Mapping[str, Any]) -> Any:
    """The value at `path` (`context.a.b`, `parents.step.results.x`), or `_MISSING`."""
    head, *rest = path.split(".")
    if head == "context":
        value: Any = context
    else:
        step, *rest = rest
        if step not in parents:
            return _MISSING
        value = {"results": parents[step]}
    for part in rest:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def time_at(path: str, context: Any, parents: Mapping[str, Any]) -> datetime | str:
    """The aware time `path` resolves to, or a problem naming the path."""
    value = lookup(path, context, parents)
    if value is _MISSING:
        return f"path '{path}' resolves to nothing"
    if isinstance(value, str):
        moment = aware_time(value)
        if moment is None:
            return f"path '{path}' is not an ISO 8601 time with a time zone: {value[:64]!r}"
        return moment
    return f"path '{path}' is not an ISO 8601 time"


def context_problems(sleep: SleepSpec | None, context: Any) -> dict[str, list[str]]:
    """Creation-time check of a `context.` path: the field is the path itself."""
    if sleep is None or sleep.until is None or not sleep.until.startswith("context."):
        return {}
    found = time_at(sleep.until, context, {})
    return {sleep.until: [found]} if isinstance(found, str) else {}


def wake_time(
    spec: SleepSpec, now: datetime, context: Any, parents: Mapping[str, Any]
) -> datetime | str:
    """When a sleep ends, or a problem (a path that resolves to no time)."""
    if spec.seconds is not None:
        return now + timedelta(seconds=spec.seconds)
    assert spec.until is not None  # parse_sleep requires one of the two
    return time_at(spec.until, context, parents)


def deadline(spec: WaitSpec, now: datetime) -> datetime:
    """When a signal wait started now times out (`NO_DEADLINE` without a timeout)."""
    if spec.timeout_seconds is None:
        return NO_DEADLINE
    return now + timedelta(seconds=spec.timeout_seconds)
