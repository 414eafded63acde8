"""Worker liveness from heartbeats written to the database by every worker process.

Ages are measured on the database's clock: each heartbeat is stamped with it and compared
with it, so hosts whose clocks disagree never make a live worker look dead (or the reverse).
A process judges others dead only once it has itself been beating without a gap for two
heartbeat intervals: after a database outage every heartbeat is stale, and the first sweep back
must not take every running step from workers that have not had their turn to beat again
(each beats once per interval, so within two of the outage's end every live one has).
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from tortoise import Tortoise

from server.db.models import WorkerHeartbeat
from server.db.rows import worker_view
from server.domain.views import WorkerView
from server.infra.ports import Clock


class WorkerRegistry:
    """Records heartbeats and answers "who is alive" and "who is dead"."""

    def __init__(
        self, clock: Clock, *, heartbeat_interval: float, database_clock: bool = False
    ) -> None:
        self.clock = clock
        self.database_clock = database_clock
        """True on PostgreSQL, whose clock every process can read."""
        self.live_within = timedelta(seconds=3 * heartbeat_interval)
        self.settle = timedelta(seconds=2 * heartbeat_interval)
        self.watching_since: datetime | None = None
        """Since when (database clock) this process has been beating without a gap."""
        self._last_beat: datetime | None = None

    async def now(self) -> datetime:
        """The database's clock on PostgreSQL; on SQLite, whose file is on this host, this
        process's clock is the database's."""
        if self.database_clock:
            conn = Tortoise.get_connection("default")
            rows = await conn.execute_query_dict("SELECT clock_timestamp() AS now")
            now: datetime = rows[0]["now"]
            return now
        return self.clock.now()

    async def heartbeat(
        self, worker_id: str, hostname: str, pid: int, started_at: datetime
    ) -> None:
        """Upsert this worker's row with the current time."""
        now = await self.now()
        updated = await WorkerHeartbeat.filter(worker_id=worker_id).update(last_seen_at=now)
        if not updated:
            await WorkerHeartbeat.create(
                worker_id=worker_id,
                hostname=hostname,
                pid=pid,
                started_at=started_at,
                last_seen_at=now,
            )
        if self._last_beat is None or now - self._last_beat > self.live_within:
            self.watching_since = now  # first beat, or back from a gap: watch afresh
        self._last_beat = now

    async def forget(self, worker_id: str) -> None:
        """Remove a worker that shut down cleanly."""
        await WorkerHeartbeat.filter(worker_id=worker_id).delete()

    async def live(self) -> list[WorkerView]:
        """Workers seen within the liveness window, most recent first."""
        since = await self.now() - self.live_within
        rows = await WorkerHeartbeat.filter(last_seen_at__gte=since).order_by("-last_seen_at")
        return [worker_view(r) for r in rows]

    async def dead_among(self, worker_ids: Iterable[str], silent_for: timedelta) -> set[str]:
        """Those of `worker_ids` whose last heartbeat is older than `silent_for`.

        A worker with no row at all is not called dead: it has not written its first
        heartbeat yet, or it shut down cleanly (then its steps wait for their leases). Nobody
        is, until this process has been beating for two intervals itself (`settle`).
        """
        wanted = list(worker_ids)
        if not wanted or self.watching_since is None:
            return set()
        now = await self.now()
        if now - self.watching_since < self.settle:
            return set()
        cutoff = now - silent_for
        rows: list[tuple[str, datetime]] = await WorkerHeartbeat.filter(
            worker_id__in=wanted
        ).values_list("worker_id", "last_seen_at")
        return {worker for worker, seen in rows if seen < cutoff}
