"""Retry arithmetic: whether a failed attempt runs again, and when.

`retry_limit` is Tasker's: the most attempts a retryable step gets. The first attempt always
runs; a retry is scheduled while `attempts < retry_limit`.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff with full jitter, capped."""

    base_seconds: float = 1.0
    factor: float = 2.0
    max_seconds: float = 300.0
    jitter: float = 0.25
    """Fraction of the computed delay that is randomised (0 = none)."""

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1-based)."""
        raw = self.base_seconds * self.factor ** max(attempts - 1, 0)
        capped = min(raw, self.max_seconds)
        if self.jitter <= 0:
            return capped
        spread = capped * self.jitter
        return max(0.0, capped - spread + (rng or random).random() * 2 * spread)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """A failed attempt will run again at `next_attempt_at`."""

    next_attempt_at: datetime
    delay_seconds: float


def decide_retry(
    *,
    attempts: int,
    retry_limit: int,
    retryable: bool,
    permanent: bool,
    retry_after: float | None,
    now: datetime,
    policy: BackoffPolicy,
    rng: random.Random | None = None,
) -> RetryDecision | None:
    """Return when to retry after a failed attempt, or None when the failure is final.

    The delay is the larger of the handler's `retry_after` and the backoff, capped by the
    policy's `max_seconds` unless the handler explicitly asked for longer.
    """
    if permanent or not retryable or attempts >= retry_limit:
        return None
    delay = policy.delay(attempts, rng)
    if retry_after is not None:
        delay = max(delay, float(retry_after))
    return RetryDecision(next_attempt_at=now + timedelta(seconds=delay), delay_seconds=delay)
