"""Optional request rate limiting (`TASKER_RATE_LIMIT`), on the `limits` library.

Off unless configured. Counted per verified token subject, or per client address for callers
without a valid token, in fixed windows: in Redis when `TASKER_RATE_LIMIT_STORAGE_URL` (else
the broker URL) names one, so every server process shares the counts; in process memory for
the embedded server. If the store is unreachable or slow, requests are let through: an
outage of the limiter must not take the API down with it, nor slow it down. A store call may
take `TASKER_RATE_LIMIT_TIMEOUT_SECONDS` (0.25 s) at most; after a failure the store is not
asked again for `PAUSE_AFTER_FAILURE_SECONDS`, so a hung Redis costs one request a short
wait now and then, not every request five seconds. Each failure counts in
`tasker_rate_limit_errors_total` and logs a warning (at most once a minute).
"""

import asyncio
import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.config import Settings
from server.infra import metrics

log = logging.getLogger("tasker.ratelimit")

WARN_EVERY_SECONDS = 60.0
PAUSE_AFTER_FAILURE_SECONDS = 5.0
KEY_PREFIX = "tasker-rate"


class RateLimiter:
    """Counts hits per key against every configured limit."""

    def __init__(
        self, items: list[RateLimitItem], storage_url: str | None, timeout: float = 0.25
    ) -> None:
        self.items = items
        self.timeout = timeout
        self.pool: ConnectionPool | None = None
        if not storage_url or storage_url.startswith("memory"):
            self.storage = storage_from_string("async+memory://")
        elif storage_url.startswith(("redis://", "rediss://", "unix://")):
            # Our own pool (redis-py, already a dependency; `limits` would want coredis), so
            # the server can close it at shutdown.
            self.pool = ConnectionPool.from_url(
                storage_url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),  # redis-py retries 3 times by default
            )
            self.storage = storage_from_string(
                "async+redis://",  # the pool says where
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                connection_pool=self.pool,  # type: ignore[arg-type]
            )
        else:
            raise ValueError("TASKER_RATE_LIMIT_STORAGE_URL must be a redis:// URL or memory://")
        self.strategy = FixedWindowRateLimiter(self.storage)
        self._warned_at = 0.0
        self._paused_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RateLimiter | None":
        """The limiter the settings ask for; None when rate limiting is off."""
        if not settings.rate_limit:
            return None
        try:
            items = parse_many(settings.rate_limit)
        except ValueError:
            raise ValueError(
                f"TASKER_RATE_LIMIT={settings.rate_limit!r} is not a rate limit; "
                "use e.g. '100/minute' or '100/minute;2000/hour'"
            ) from None
        return cls(
            items,
            settings.rate_limit_storage_url or settings.broker_url,
            settings.rate_limit_timeout_seconds,
        )

    async def hit(self, key: str) -> int | None:
        """Count one request for `key`: None if allowed, else the seconds until it may retry."""
        if time.monotonic() < self._paused_until:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                return await self._hit(key)
        except Exception as exc:  # any storage failure: fail open, see the module docstring
            self._failed(exc)
        return None

    async def _hit(self, key: str) -> int | None:
        for item in self.items:
            if not await self.strategy.hit(item, key):
                stats = await self.strategy.get_window_stats(item, key)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._paused_until = now + PAUSE_AFTER_FAILURE_SECONDS
        metrics.RATE_LIMIT_ERRORS.labels(type(exc).__name__).inc()
        if now - self._warned_at > WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "rate limiting skipped for %.0f s: storage unavailable (%s)",
                PAUSE_AFTER_FAILURE_SECONDS,
                type(exc).__name__,
            )

    async def close(self) -> None:
        """Release the Redis connections (at server shutdown)."""
        if self.pool is not None:
            await self.pool.aclose()
