"""Failure simulation for the example step handlers, driven by the task context.

Every example step honours three optional context keys, so retries, permanent failures and
timeouts can be demonstrated without changing code:

- `"simulate_failures": {"charge_card": 2}`: that step raises `RetryableError` on its first 2
  attempts and works on the third (whether a third attempt happens is the step's retry limit);
- `"simulate_permanent_failure": "charge_card"` (or a list of step names): that step raises
  `PermanentError` with code `SIMULATED_FAILURE` on every attempt;
- `"simulate_sleep": {"charge_card": 2.5}`: that step sleeps that many seconds before working,
  on every attempt (pair it with `timeout_seconds` to see a timeout).

A malformed value for the running step fails it permanently with code `INVALID_SIMULATION`.
"""

import asyncio
from collections.abc import Mapping
from typing import Any

from server.domain.errors import PermanentError, RetryableError
from server.handlers.base import StepContext


async def simulate(step: StepContext) -> None:
    """Apply whatever the task context asks of this step: sleep, then fail if told to."""
    context: Mapping[str, Any] = step.context if isinstance(step.context, Mapping) else {}
    seconds = _entry(context, "simulate_sleep", step.name)
    if seconds is not None:
        await asyncio.sleep(seconds)
    if step.name in _names(context.get("simulate_permanent_failure")):
        raise PermanentError(f"simulated permanent failure of {step.name}", "SIMULATED_FAILURE")
    failures = _entry(context, "simulate_failures", step.name)
    if failures is not None and step.attempt <= failures:
        raise RetryableError(
            f"simulated failure of {step.name} (attempt {step.attempt} of {int(failures)} failing)"
        )


def _entry(context: Mapping[str, Any], key: str, step: str) -> float | None:
    """The non-negative number `context[key][step]`, if there is one."""
    table = context.get(key)
    if table is None or (isinstance(table, Mapping) and table.get(step) is None):
        return None
    value = table.get(step) if isinstance(table, Mapping) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise PermanentError(
            f"context.{key} must map step names to non-negative numbers", "INVALID_SIMULATION"
        )
    return float(value)


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()
