"""A small cache for computed reports: in process memory (embedded mode) or in Redis.

Values are JSON objects stored with the time they were computed, so a reader can say how old
the figures are. Both implementations take the same injectable clock; Redis expires keys on
its own clock, so its entries carry their computation time for the age and TTL check too.
A cache that cannot be reached is a miss, never an error: reports are then computed afresh.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from server.infra.ports import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cached value and when it was computed."""

    value: dict[str, Any]
    stored_at: datetime


class Cache(Protocol):
    """Get and set JSON objects with a time to live."""

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry for `key`, or None."""
        ...

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> CacheEntry:
        """Store `value` for `ttl` seconds; returns the entry as stored."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryCache:
    """Per-process cache (the embedded server is one process)."""

    def __init__(self, clock: Clock, max_entries: int = 256) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[CacheEntry, datetime]] = {}

    async def get(self, key: str) -> CacheEntry | None:
        """The entry while its time to live lasts."""
        found = self._entries.get(key)
        if found is None:
            return None
        entry, expires_at = found
        if self.clock.now() >= expires_at:
            del self._entries[key]
            return None
        return entry

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> CacheEntry:
        """Store, dropping the oldest entries beyond `max_entries` (scopes are user input)."""
        now = self.clock.now()
        entry = CacheEntry(value, now)
        self._entries.pop(key, None)
        self._entries[key] = (entry, now + timedelta(seconds=ttl))
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]
        return entry

    async def close(self) -> None:
        """Nothing to release."""


class RedisCache:
    """Shared by every server process on one Redis (production mode)."""

    def __init__(
        self, url: str, clock: Clock, timeout: float = 0.5, prefix: str = "tasker:cache:"
    ) -> None:
        import redis.asyncio as aioredis

        self.clock = clock
        self.prefix = prefix
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    async def get(self, key: str) -> CacheEntry | None:
        """The entry, if Redis has it and our clock agrees it is still fresh."""
        import redis

        try:
            raw = await self._client.get(self.prefix + key)
        except redis.RedisError:
            log.warning("analytics cache unreachable; computing afresh", exc_info=True)
            return None
        if raw is None:
            return None
        data = json.loads(raw)
        entry = CacheEntry(data["value"], datetime.fromisoformat(data["stored_at"]))
        if self.clock.now() >= entry.stored_at + timedelta(seconds=float(data["ttl"])):
            return None
        return entry

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> CacheEntry:
        """SET with an expiry; a failure is logged and the entry still returned."""
        import redis

        entry = CacheEntry(value, self.clock.now())
        payload = {"value": value, "stored_at": entry.stored_at.isoformat(), "ttl": ttl}
        try:
            await self._client.set(
                self.prefix + key, json.dumps(payload), px=max(1, int(ttl * 1000))
            )
        except redis.RedisError:
            log.warning("analytics cache unreachable; result not cached", exc_info=True)
        return entry

    async def close(self) -> None:
        """Release the connection pool."""
        await self._client.aclose()
