"""The step store: where claims, completions and failures are written.

Two implementations, chosen once when the process is built (`server.container`): the portable
store (`server.engine.portable`, the ORM: SQLite and PostgreSQL) and the PostgreSQL store
(`server.engine.pg_store`, one statement per claim or completion). Both follow the rules of
`server.domain.readiness` and move statuses only as `server.domain.states` allows; the same
behavioural tests run against both.

Every operation takes a sequence and returns one answer per item, in order, so a store may
write several claims or completions in one round trip. The PostgreSQL store writes the claims
(of steps without limits) and the completions that arrive together in one statement each
(`server.engine.group_commit`); the portable store goes one by one.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from server.engine.changes import TaskRef


def lease_holder(lease_owner: str) -> str:
    """The worker id a lease was issued to (leases are `<worker id>/<claim number>`)."""
    return lease_owner.rpartition("/")[0]


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """A step to claim, under a lease fresh for this claim."""

    step_id: int
    lease_owner: str
    worker_id: str
    default_timeout: float
    """The step's timeout when its template sets none."""
    lease_grace: float
    """How long past the timeout the lease lasts."""
    limited: bool = False
    """A hint that the step has limits (its message or its parent's completion said so): the
    PostgreSQL store then runs the limited claim first, not the plain one that would miss it."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A step this worker now holds the lease on."""

    step_id: int
    step_name: str
    task: TaskRef
    handler_name: str
    handler_version: str
    handler_class: str
    attempt: int
    retry_limit: int
    retryable: bool
    timeout: float
    inputs: Any
    context: Any
    parent_results: dict[str, Any]
    lease_owner: str
    # For metrics only: task duration and step hand-off latency. A delayed task's duration
    # counts from its start time (`run_at`), not from its creation.
    task_created_at: datetime | None = None
    parents_done_at: datetime | None = None
    limited: bool = False
    """The step holds flow-control slots: its outcome is recorded by the portable store,
    which frees them (`server.engine.limits`)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt produced: results, or an error and how to treat it."""

    results: Any = None
    encoded: str = "null"
    """`results` as JSON, encoded once (which also proves they are JSON)."""
    error: str | None = None
    error_class: str | None = None
    permanent: bool = False
    retry_after: float | None = None
    awaiting: str | None = None
    """Set when the step now waits without a worker (a child task, its map items): the lease
    it is handed over to (`server.engine.awaiting`)."""

    @property
    def ok(self) -> bool:
        """True when the attempt succeeded."""
        return self.error is None and self.awaiting is None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording an attempt did: `complete`, `retrying`, `failed` or `discarded` (the
    lease was lost), and a child it made ready that the recording worker may run itself."""

    result: str
    run_next: int | None = None
    next_limited: bool = False
    """`run_next` has limits (`ClaimRequest.limited`)."""


class StepStore(Protocol):
    """Writes the execution of steps; every status change inside goes through the move tables."""

    async def claim(self, requests: Sequence[ClaimRequest]) -> list[Claim | None]:
        """Claim each runnable step (None for one not runnable, or lost to another worker)."""
        ...

    async def complete(self, attempts: Sequence[tuple[Claim, Outcome]]) -> list[Recorded]:
        """Record successful attempts: the step completes, its task advances."""
        ...

    async def fail(self, attempts: Sequence[tuple[Claim, Outcome]]) -> list[Recorded]:
        """Record failed attempts: a retry is scheduled, or the step fails for good."""
        ...
