"""Claiming a step: compare-and-set it to in_progress under a fresh lease.

The store refuses a step that is not runnable (wrong state, not due, a parent not done, its
task not active: `server.domain.readiness`), so stale or duplicated nudges are harmless.
"""

import itertools

from server.engine.store import Claim, ClaimRequest, StepStore, lease_holder

__all__ = ["Claim", "Claimer", "lease_holder"]


class Claimer:
    """Claims steps for one worker identity."""

    def __init__(
        self, store: StepStore, *, worker_id: str, default_timeout: float, lease_grace: float
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.default_timeout = default_timeout
        self.lease_grace = lease_grace
        self._leases = itertools.count(1)

    async def claim(self, step_id: int) -> Claim | None:
        """Compare-and-set the step to in_progress with a lease, or None if not runnable."""
        (claim,) = await self.store.claim([self.request(step_id)])
        return claim

    def request(self, step_id: int) -> ClaimRequest:
        """A claim of this step under a new lease of this worker."""
        return ClaimRequest(
            step_id, self._new_lease(), self.worker_id, self.default_timeout, self.lease_grace
        )

    def _new_lease(self) -> str:
        # Unique per claim: a late result from an earlier claim by this same process must not
        # match a newer lease on the same step. The worker id is unique per process start, so
        # a counter suffices (uuid4 reads os.urandom: 4 % of a worker's CPU under load).
        # The prefix names the claiming worker: the sweeper reclaims the steps of a worker
        # whose heartbeats stopped (`lease_holder`).
        return f"{self.worker_id}/{next(self._leases)}"
