"""Analytics rollups: which parts of a report window come from them, and histograms.

A report window `[since, now]` is answered from two sources (`Split`):
- the *rolled* blocks: whole UTC hours inside the window, and whole five-minute slots
  between the window's edges and its first and last whole hours, that ended at least `SETTLE`
  before now; read from the rollup tables (written once, when first needed, and by the
  sweeper);
- the *live* ranges: the partial slot at the start of the window and everything since the
  last settled slot, read from the tasks and steps tables as before.
So a report reads at most about seven minutes of raw history, whatever the window's length
and the rate of work. With hours alone, a window's partial first and last hours (up to two
hours of steps) were read raw: at a million tasks that was most of the bottleneck report.

Percentiles come from log-spaced duration histograms (`Histogram`), which merge across slots.
Durations are rounded to whole milliseconds; bucket `floor(ln(ms) * BUCKETS_PER_LN)` spans a
factor of 1.01, and each bucket keeps the count and the sum of its values. A percentile is the
nearest-rank bucket's mean: when the values in that bucket are all equal (small data, round
durations) it is exact; otherwise it lies within 1 % of the exact nearest-rank value. The same
bucket formula runs in SQL on both dialects (integer input, the C library's `log`), so
PostgreSQL and SQLite give identical figures.
"""

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

HOUR = 3600
FIVE_MINUTES = 300
SPANS = (HOUR, FIVE_MINUTES)
"""Rollup slot lengths in seconds, coarsest first; each divides the one before it."""
SETTLE = timedelta(minutes=2)
"""How long after a slot ends before it is rolled up: rows stamped just before the slot's end
by a transaction still committing (or a worker whose clock runs slightly behind) get in."""
BUCKETS_PER_LN = 100.49916001
"""1 / ln(1.01): buckets are 1 % wide (written out so that SQL and Python use the same float)."""

Range = tuple[datetime, datetime | None]
"""A half-open time range `[start, end)`; `end` None means up to now."""


def slot_number(at: datetime, span: int = HOUR) -> int:
    """Slots of `span` seconds since the Unix epoch (UTC) before the one holding `at`: the
    rollups' key."""
    return math.floor(at.timestamp() / span)


def slot_start(number: int, span: int = HOUR) -> datetime:
    """The first instant of slot `number`."""
    return datetime.fromtimestamp(number * span, UTC)


def bucket(ms: float) -> int:
    """The histogram bucket of a duration (the SQL in `server.db.sql.bucket` mirrors this)."""
    whole = round(ms)
    return -1 if whole < 1 else math.floor(math.log(whole) * BUCKETS_PER_LN)


@dataclass(frozen=True, slots=True)
class Block:
    """The rolled slots `[first, end)` of one length (`span` seconds)."""

    span: int
    first: int
    end: int

    @property
    def start(self) -> datetime:
        return slot_start(self.first, self.span)

    @property
    def stop(self) -> datetime:
        return slot_start(self.end, self.span)


@dataclass(frozen=True, slots=True)
class Split:
    """A window `[since, now]` cut into rolled blocks (contiguous, in time order) and live
    ranges (before the first block and after the last)."""

    since: datetime
    blocks: tuple[Block, ...]
    live: tuple[Range, ...]

    @property
    def rolled(self) -> bool:
        """Whether any part of the window comes from the rollups."""
        return bool(self.blocks)

    @property
    def rolled_start(self) -> datetime:
        return self.blocks[0].start

    @property
    def rolled_end(self) -> datetime:
        return self.blocks[-1].stop

    def slots(self) -> Iterator[tuple[int, int]]:
        """The rolled (span, slot) pairs."""
        for b in self.blocks:
            for slot in range(b.first, b.end):
                yield b.span, slot

    def covers(self, span: int, slot: int) -> bool:
        """Whether the rolled part holds this slot."""
        return any(b.span == span and b.first <= slot < b.end for b in self.blocks)


def split(since: datetime, now: datetime, *, rollups: bool = True) -> Split:
    """Cut `[since, now]`: the whole hours that ended by `now - SETTLE` are rolled, then the
    whole five-minute slots around them, and the rest is live."""
    settled = now - SETTLE
    blocks = _cover(since.timestamp(), settled.timestamp(), SPANS) if rollups else []
    if not blocks:
        return Split(since, (), ((since, None),))
    head = blocks[0].start
    live: tuple[Range, ...] = ((since, head),) if since < head else ()
    return Split(since, tuple(blocks), (*live, (blocks[-1].stop, None)))


def _cover(start: float, end: float, spans: tuple[int, ...]) -> list[Block]:
    """The largest slots inside `[start, end)` (epoch seconds): whole slots of the first span,
    and the margins on either side covered by the finer spans in turn."""
    if not spans:
        return []
    span, finer = spans[0], spans[1:]
    first, last = math.ceil(start / span), math.floor(end / span)
    if last <= first:
        return _cover(start, end, finer)
    return [
        *_cover(start, first * span, finer),
        Block(span, first, last),
        *_cover(last * span, end, finer),
    ]


@dataclass(slots=True)
class Histogram:
    """Bucket -> [count, sum of whole-millisecond values]."""

    buckets: dict[int, list[int]] = field(default_factory=dict)

    def add(self, index: int, count: int, total: float) -> None:
        """Merge `count` values summing to `total` into bucket `index`."""
        slot = self.buckets.setdefault(int(index), [0, 0])
        slot[0] += int(count)
        slot[1] += round(float(total))

    def add_stored(self, texts: Iterable[str | None]) -> None:
        """Merge stored histograms (`{"bucket": [count, sum]}`, whole numbers as written).

        Merged under their text keys first and converted once at the end: a day of rolled
        rows holds tens of thousands of buckets, and converting each one was most of the
        performance report's time at a million tasks."""
        merged: dict[str, list[int]] = {}
        for text in texts:
            for index, (count, total) in orjson.loads(text or "{}").items():
                slot = merged.get(index)
                if slot is None:
                    merged[index] = [count, total]
                else:
                    slot[0] += count
                    slot[1] += total
        for index, (count, total) in merged.items():
            self.add(int(index), count, total)

    def merge(self, other: "Histogram") -> None:
        """Add another histogram's values to this one."""
        for index, (count, total) in other.buckets.items():
            self.add(index, count, total)

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Merge live rows with columns `b`, `n`, `s`."""
        for r in rows:
            self.add(int(r["b"]), int(r["n"]), float(r["s"]))

    @property
    def count(self) -> int:
        """How many values."""
        return sum(n for n, _ in self.buckets.values())

    def percentile(self, p: float) -> int | None:
        """Nearest-rank p-quantile: the mean of the bucket holding rank ceil(p * n)."""
        total = self.count
        if total == 0:
            return None
        rank = max(1, math.ceil(p * total))
        seen = 0
        for index in sorted(self.buckets):
            n, s = self.buckets[index]
            seen += n
            if seen >= rank:
                return round(s / n)
        raise AssertionError("unreachable: ranks are within the count")

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps({str(k): v for k, v in sorted(self.buckets.items())})
