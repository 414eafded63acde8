"""Flow control rules: limit declarations, key expressions, periods and priorities (pure).

A handler may declare `concurrency: {key, limit, strategy}` (at most `limit` of its tasks in
progress per key) and a default `priority`; a step template `concurrency: {key, limit}` (at
most `limit` of its steps running per key, across all tasks) and `rate_limit: {key, limit,
period}` (at most `limit` starts in any sliding window of one `period`). Keys are dotted paths
into the task's context (`context.customer.id`) or constant strings; they are resolved once,
when the task is created, and stored on each step (`Flow`).
"""

import re
from dataclasses import dataclass
from typing import Any

STRATEGIES = ("queue", "cancel_in_progress", "cancel_newest")
MIN_PRIORITY, DEFAULT_PRIORITY, MAX_PRIORITY = 1, 2, 3
_PERIOD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
MAX_KEY_LENGTH = 255


class FlowSpecError(ValueError):
    """A limit declaration that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class ConcurrencySpec:
    """`concurrency:` as declared; `key` None means one group for everything."""

    limit: int
    key: str | None = None
    strategy: str = "queue"


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """`rate_limit:` as declared, `period` in seconds."""

    limit: int
    period: float
    key: str | None = None
    period_text: str = ""


def parse_period(value: object) -> float:
    """`10s`, `1m`, `1h` (or a positive number of seconds) as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _PERIOD.match(value) if isinstance(value, str) else None
    if match is None or float(match[1]) <= 0:
        raise FlowSpecError(f"period {value!r} does not parse (use e.g. 10s, 1m, 1h)")
    return float(match[1]) * _UNITS[match[2]]


def check_key(key: object) -> str | None:
    """A key expression: a `context.` path or a constant (no dots); None when omitted."""
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip():
        raise FlowSpecError("key must be a non-empty string")
    if "." in key and not key.startswith("context."):
        raise FlowSpecError(
            f"key '{key}' cannot resolve: a limit's key is a context path "
            "(context.customer.id) or a constant without dots"
        )
    if key.startswith("context.") and any(not part for part in key.split(".")[1:]):
        raise FlowSpecError(f"key '{key}' is not a dotted path")
    if key == "context":
        raise FlowSpecError("key 'context' names the whole context, not a value")
    return key


def _limit(raw: dict[str, Any]) -> int:
    limit = raw.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise FlowSpecError(f"limit must be an integer of at least 1, not {limit!r}")
    return limit


def parse_concurrency(raw: object, *, strategies: bool) -> ConcurrencySpec | None:
    """`concurrency:`; `strategies` allows `strategy` (handlers only)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise FlowSpecError("'concurrency' must be a mapping {key, limit, strategy}")
    allowed = {"key", "limit", "strategy"} if strategies else {"key", "limit"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise FlowSpecError(f"'concurrency' has unknown field(s) {unknown}")
    strategy = raw.get("strategy", "queue")
    if strategy not in STRATEGIES:
        raise FlowSpecError(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    return ConcurrencySpec(_limit(raw), check_key(raw.get("key")), strategy)


def parse_rate_limit(raw: object) -> RateLimitSpec | None:
    """`rate_limit:`."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise FlowSpecError("'rate_limit' must be a mapping {key, limit, period}")
    unknown = sorted(set(raw) - {"key", "limit", "period"})
    if unknown:
        raise FlowSpecError(f"'rate_limit' has unknown field(s) {unknown}")
    if "period" not in raw:
        raise FlowSpecError("'rate_limit' needs a period (e.g. 1m)")
    period = parse_period(raw["period"])
    return RateLimitSpec(_limit(raw), period, check_key(raw.get("key")), str(raw["period"]))


def parse_priority(raw: object) -> int:
    """A handler's default `priority` (1..3, default 2)."""
    if raw is None:
        return DEFAULT_PRIORITY
    if isinstance(raw, bool) or not isinstance(raw, int) or not MIN_PRIORITY <= raw <= MAX_PRIORITY:
        raise FlowSpecError(f"priority must be 1, 2 or 3, not {raw!r}")
    return raw


def priority_problem(value: object) -> str | None:
    """Why a creation's `priority` is refused (None when it is acceptable or absent)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer 1..3"
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        return f"must be between {MIN_PRIORITY} and {MAX_PRIORITY}"
    return None


class KeyMissing(LookupError):
    """A key path that resolves to nothing in this task's context."""


def resolve_key(key: str | None, context: Any) -> str:
    """The key's value for this context: '' for one global group, the constant, or the path's
    value as text (KeyMissing naming the path when it is absent)."""
    if key is None:
        return ""
    if not key.startswith("context."):
        return key
    value = context
    for part in key.split(".")[1:]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyMissing(key)
    if value is None or isinstance(value, dict | list):
        raise KeyMissing(key)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text[:MAX_KEY_LENGTH]


def context_paths(*keys: str | None) -> list[str]:
    """The context paths among these keys (checked at creation)."""
    return [k for k in keys if k is not None and k.startswith("context.")]


CONCURRENCY_LIMITED = "concurrency_limited"
"""A blocked-reason code: the step waits for a slot of a concurrency limit's key."""
RATE_LIMITED = "rate_limited"
"""A blocked-reason code: the step waits for its rate limit's window to have room."""


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """The current use of one key of one declared limit (`GET /tasker/limits`)."""

    kind: str
    """`task` (a handler's concurrency), `step` (a step's concurrency) or `rate`."""
    namespace: str
    handler: str
    step: str | None
    key: str
    limit: int
    in_use: int
    """Slots held (concurrency) or starts in the current window (rate)."""
    waiting: int
    """Steps waiting for a slot (concurrency; 0 for a rate limit)."""
    holders: tuple[str, ...] = ()
    period_seconds: float | None = None
