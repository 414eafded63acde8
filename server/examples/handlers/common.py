"""What every example step handler shares: the simulation hook and typed context access.

The example handlers are fast and deterministic: identifiers are derived from the task id and
the business keys, so a retried step returns what its first successful attempt would have.
"""

import hashlib
from collections.abc import Mapping
from typing import Any

from server.domain.errors import PermanentError
from server.examples.handlers.failures import simulate
from server.handlers.base import StepContext, StepHandler


class ExampleHandler(StepHandler):
    """Runs the context's failure simulation for the step, then the handler's `work`."""

    async def process(self, step: StepContext) -> dict[str, Any]:
        """Simulate what the context asks for, then do the work."""
        await simulate(step)
        return self.work(step)

    def work(self, step: StepContext) -> dict[str, Any]:
        """The step's real work; returns its results."""
        raise NotImplementedError


def context_of(step: StepContext) -> Mapping[str, Any]:
    """The task context as a mapping (empty when the context is not an object)."""
    return step.context if isinstance(step.context, Mapping) else {}


def require_int(step: StepContext, key: str) -> int:
    """`context[key]` as an integer, failing the step permanently when absent or mistyped."""
    value = context_of(step).get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PermanentError(f"context.{key} must be an integer", code="INVALID_CONTEXT")
    return value


def number(step: StepContext, key: str, default: float) -> float:
    """`context[key]` as a number, or `default` when absent."""
    value = context_of(step).get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PermanentError(f"context.{key} must be a number", code="INVALID_CONTEXT")
    return float(value)


def text(step: StepContext, key: str, default: str) -> str:
    """`context[key]` as a string, or `default` when absent."""
    value = context_of(step).get(key, default)
    if not isinstance(value, str):
        raise PermanentError(f"context.{key} must be a string", code="INVALID_CONTEXT")
    return value


def items(step: StepContext) -> list[tuple[str, int]]:
    """`context.items` as `(sku, quantity)` pairs; at least one is required."""
    raw = context_of(step).get("items")
    pairs = [_item(entry) for entry in raw] if isinstance(raw, list) else []
    valid = [pair for pair in pairs if pair is not None]
    if not valid or len(valid) != len(pairs):
        raise PermanentError(
            "context.items must list {sku, quantity >= 1} entries", code="INVALID_CONTEXT"
        )
    return valid


def _item(entry: object) -> tuple[str, int] | None:
    if not isinstance(entry, Mapping):
        return None
    sku, quantity = entry.get("sku"), entry.get("quantity", 1)
    if not isinstance(sku, str) or isinstance(quantity, bool) or not isinstance(quantity, int):
        return None
    return (sku, quantity) if quantity >= 1 else None


def parent(step: StepContext, name: str) -> Mapping[str, Any]:
    """The results of parent step `name` (empty when it returned no mapping)."""
    results = step.parent_results.get(name)
    return results if isinstance(results, Mapping) else {}


def stable_id(prefix: str, *parts: object) -> str:
    """A short identifier that is the same whenever the parts are."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16]
    return f"{prefix}_{digest}"


def stock_level(warehouse: str, sku: str) -> int:
    """The pretend stock of `sku` in `warehouse`: stable, between 0 and 49."""
    return int(hashlib.sha256(f"{warehouse}:{sku}".encode()).hexdigest(), 16) % 50
