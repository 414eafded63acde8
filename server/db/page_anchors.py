"""Deep offset pages without walking every task before them.

`GET /tasker/tasks?page=N` is an offset into the newest-first order, and PostgreSQL can only
reach an offset by stepping over that many index entries: page 20,000 of a million tasks took
68 ms against 5 ms for the first page. So the keys at every `EVERY`-th position are
taken once (`reads.anchors`, ~0.1 s at a million tasks) and reused: a deep page starts from
the anchor just before its offset and steps over fewer than `EVERY` entries.

Tasks created after the anchors were taken come before all of them (the order is by creation
time), so they shift every anchor's position alike; each deep page counts them first (a short
index range) and stays exact. Anchors are only kept for filters on fields that never change
(namespace, name, version): a status filter gains and loses tasks anywhere in the order.
What anchors cannot see is a deletion (`tasker prune`) among the newer tasks: until they are
retaken (`ANCHORS.ttl`), a deep page may then start up to that many rows late, as any offset
page moves when tasks come and go between two requests.
"""

from server.db import reads
from server.db.reads import Key
from server.domain.views import TaskFilter
from server.infra.memo import RefreshingMemo

EVERY = 1000
DEEP = 10_000
"""Offsets below this are walked directly (at most a few milliseconds)."""

ANCHORS: RefreshingMemo[list[Key]] = RefreshingMemo(ttl=60.0, stale_limit=600.0, max_keys=64)
"""At most 1,000 keys per million matching tasks, for at most 64 filters (they are user input)."""


async def seek(flt: TaskFilter, offset: int) -> tuple[Key | None, int]:
    """Where the page at `offset` starts: a task to count from (inclusive) and the offset
    that remains past it, or (None, offset) to walk from the newest task."""
    if offset < DEEP or flt.status is not None:
        return None, offset
    key = (flt.namespace, flt.name, flt.version)
    found = await ANCHORS.get(key, lambda: reads.anchors(flt, EVERY))
    if not found:
        return None, offset
    # Anchor j stood at position j * EVERY; tasks created since stand before all of them.
    position = offset - await reads.count_newer(flt, found[0])
    j = min(len(found) - 1, position // EVERY)
    if j <= 0:
        return None, offset
    return found[j], position - j * EVERY
