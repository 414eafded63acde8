"""Worker liveness from heartbeats written to the database by every worker process."""

from datetime import datetime, timedelta

from server.db.models import WorkerHeartbeat
from server.db.rows import worker_view
from server.domain.views import WorkerView
from server.services.ports import Clock


class WorkerRegistry:
    """Records heartbeats and answers "who is alive"."""

    def __init__(self, clock: Clock, *, live_within: float) -> None:
        self.clock = clock
        self.live_within = timedelta(seconds=live_within)

    async def heartbeat(
        self, worker_id: str, hostname: str, pid: int, started_at: datetime
    ) -> None:
        """Upsert this worker's row with the current time."""
        now = self.clock.now()
        updated = await WorkerHeartbeat.filter(worker_id=worker_id).update(last_seen_at=now)
        if not updated:
            await WorkerHeartbeat.create(
                worker_id=worker_id,
                hostname=hostname,
                pid=pid,
                started_at=started_at,
                last_seen_at=now,
            )

    async def forget(self, worker_id: str) -> None:
        """Remove a worker that shut down cleanly."""
        await WorkerHeartbeat.filter(worker_id=worker_id).delete()

    async def live(self) -> list[WorkerView]:
        """Workers seen within the liveness window, most recent first."""
        since = self.clock.now() - self.live_within
        rows = await WorkerHeartbeat.filter(last_seen_at__gte=since).order_by("-last_seen_at")
        return [worker_view(r) for r in rows]
