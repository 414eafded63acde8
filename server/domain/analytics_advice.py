"""Advice from a step's figures: when a timeout or a retry limit should change.

Each recommendation quotes the figures it rests on, and none is given for a step with fewer
than MIN_SAMPLE finished runs in the period.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from server.domain.analytics import Recommendation, SlowStep

MIN_SAMPLE = 20
"""Fewest finished runs of a step before a recommendation may rest on its figures."""
NEAR_TIMEOUT = 0.8
"""A step whose p95 reaches this share of its timeout is one slow day from timing out."""


@dataclass(frozen=True, slots=True)
class StepStats:
    """One (handler, step)'s finished attempts in the period: what the advice rests on."""

    task_name: str
    step_name: str
    runs: int
    avg_duration_ms: int
    p95_duration_ms: int | None  # only computed where it can matter (see `needs_p95`)
    retried: int
    timeout_seconds: float
    timed_out: int
    retry_limit: int
    retried_successes: int
    last_attempt_successes: int
    exhausted: int

    @property
    def retry_rate(self) -> float:
        """Share of runs that needed more than one attempt."""
        return round(self.retried / self.runs, 4) if self.runs else 0.0

    def as_slow_step(self) -> "SlowStep":
        """The seed's `slowest_steps` entry for these figures."""
        return SlowStep(self.step_name, self.task_name, self.avg_duration_ms, self.retry_rate)


def needs_p95(runs: int, max_ms: float, timeout_seconds: float) -> bool:
    """Whether a step's p95 could support timeout advice: enough runs, and a slowest run near
    the timeout (p95 <= max, so when the max is below the threshold the p95 is too)."""
    return runs >= MIN_SAMPLE and max_ms >= NEAR_TIMEOUT * timeout_seconds * 1000


def recommend(stats: Sequence[StepStats]) -> list[Recommendation]:
    """Advice the figures support; nothing for steps with fewer than MIN_SAMPLE runs."""
    out: list[Recommendation] = []
    for s in stats:
        if s.runs < MIN_SAMPLE:
            continue
        timeout_ms = s.timeout_seconds * 1000
        if s.p95_duration_ms is not None and s.p95_duration_ms >= NEAR_TIMEOUT * timeout_ms:
            suggested = 5 * math.ceil(1.25 * s.p95_duration_ms / 1000 / 5)
            out.append(
                Recommendation(
                    type="timeout_optimization",
                    step=s.step_name,
                    task_name=s.task_name,
                    current_timeout=s.timeout_seconds,
                    suggested_timeout=float(suggested),
                    rationale=(
                        f"95th percentile execution time is {s.p95_duration_ms / 1000:.1f}s "
                        f"against a {s.timeout_seconds:g}s timeout over {s.runs} runs "
                        f"of {s.task_name}"
                        + (f"; {s.timed_out} attempts timed out" if s.timed_out else "")
                    ),
                )
            )
        # Retries that only work at the very last allowed attempt mean the limit is binding:
        # some of the exhausted runs would probably have succeeded with one more.
        if (
            s.retry_limit > 1
            and s.last_attempt_successes >= 3
            and s.last_attempt_successes * 2 >= s.retried_successes
            and s.exhausted > 0
        ):
            out.append(
                Recommendation(
                    type="retry_limit",
                    step=s.step_name,
                    task_name=s.task_name,
                    current_retry_limit=s.retry_limit,
                    suggested_retry_limit=s.retry_limit + 1,
                    rationale=(
                        f"{s.last_attempt_successes} of {s.retried_successes} retried runs of "
                        f"{s.task_name} succeeded "
                        "only at the last allowed attempt "
                        f"({s.retry_limit} of {s.retry_limit}) and "
                        f"{s.exhausted} runs exhausted all {s.retry_limit} attempts"
                    ),
                )
            )
    return out
