"""A rate limit's recent starts, kept in a bounded form: `[time, count]` buckets.

A rate limit admits a start when fewer than `limit` starts of its key lie in the sliding
window `(now - period, now]`. Keeping every start made the key row as long as the starts of a
window: a limit of 100,000 a minute on a busy key kept tens of thousands of numbers, and every
start rewrote them all. Here a start is counted in the bucket of its time rounded *up* to a
hundredth of the period, so a key's row holds about a hundred buckets whatever the limit:

- rounding up only makes a start look later, so it counts in every window the exact start
  counts in (and at most one bucket's width, a hundredth of the period, longer): the limit
  holds in every window of the history, and a saturated key still gets 99 % of its rate;
- buckets that have left the window (by the writer's time) are merged into one, at the latest
  of their times, its count capped at `limit` (any count from `limit` on refuses alike). Only a
  claim whose time is older than the writer's can still count them (`KEEP_STARTS_SECONDS`):
  the merged bucket then counts whole, which refuses rather than admits;
- only the newest buckets that hold `limit` starts are kept (an older start cannot decide).

Rows written before buckets hold bare numbers, one start each: they are read as `[time, 1]`.
The PostgreSQL claim does the same in SQL (`server.engine.pg_flow_sql`).
"""

import math
from collections.abc import Iterable, Sequence
from typing import Any

BUCKETS_PER_PERIOD = 100
"""A start counts from its time rounded up to `period / BUCKETS_PER_PERIOD`."""

Buckets = list[tuple[float, int]]
"""(epoch seconds, starts), in time order."""


def read(stored: Iterable[Any] | None) -> Buckets:
    """A key row's kept starts: `[time, count]` pairs, or bare times (one start each)."""
    found: dict[float, int] = {}
    for entry in stored or ():
        at, n = (float(entry[0]), int(entry[1])) if isinstance(entry, list) else (float(entry), 1)
        found[at] = found.get(at, 0) + n
    return sorted(found.items())


def bucket_of(moment: float, period: float) -> float:
    """The bucket a start at `moment` (epoch seconds) counts in."""
    width = period / BUCKETS_PER_PERIOD
    return math.ceil(moment / width) * width


def in_window(buckets: Sequence[tuple[float, int]], now: float, period: float) -> int:
    """The starts counted in the window ending at `now`."""
    opened = now - period
    return sum(n for at, n in buckets if at > opened)


def room_at(
    buckets: Sequence[tuple[float, int]], now: float, period: float, limit: int
) -> float | None:
    """None when a start at `now` fits the window; else when the window next has room (epoch
    seconds): once enough of its oldest buckets have left it."""
    opened = now - period
    counted = [(at, n) for at, n in buckets if at > opened]
    excess = sum(n for _, n in counted) - limit + 1
    if excess <= 0:
        return None
    for at, n in counted:
        excess -= n
        if excess <= 0:
            return at + period
    raise AssertionError("unreachable: the counted buckets hold the excess")


def after_start(
    buckets: Sequence[tuple[float, int]], now: float, period: float, limit: int, keep: float
) -> Buckets:
    """The buckets to keep after a start at `now` (see the module's rules); `keep` is how
    long past the window a claim's time may lag (`KEEP_STARTS_SECONDS`)."""
    opened = now - period
    mine = bucket_of(now, period)
    found = dict(b for b in buckets if b[0] > opened - keep)
    found[mine] = found.get(mine, 0) + 1
    left = [(at, n) for at, n in found.items() if at <= opened]
    kept = sorted((at, n) for at, n in found.items() if at > opened)
    if left:
        kept.insert(0, (max(at for at, _ in left), min(sum(n for _, n in left), limit)))
    newest: Buckets = []
    total = 0
    for at, n in reversed(kept):
        if total >= limit:
            break
        newest.append((at, n))
        total += n
    return newest[::-1]


def stored(buckets: Sequence[tuple[float, int]]) -> list[list[float | int]]:
    """The buckets as the key row's JSON keeps them."""
    return [[at, n] for at, n in buckets]
