"""Hourly rollups for the analytics reports: which hours come from rollups, and histograms.

A report window `[since, now]` is answered from two sources (`Split`):
- the *rolled* hours: every whole UTC hour inside the window that ended at least `SETTLE`
  before now, read from the rollup tables (written once, when first needed, and by the
  sweeper);
- the *live* ranges: the partial hour at the start of the window and everything since the
  last settled hour, read from the tasks and steps tables as before.
So a report reads at most about two hours of raw history, whatever the window's length.

Percentiles come from log-spaced duration histograms (`Histogram`), which merge across hours.
Durations are rounded to whole milliseconds; bucket `floor(ln(ms) * BUCKETS_PER_LN)` spans a
factor of 1.01, and each bucket keeps the count and the sum of its values. A percentile is the
nearest-rank bucket's mean: when the values in that bucket are all equal (small data, round
durations) it is exact; otherwise it lies within 1 % of the exact nearest-rank value. The same
bucket formula runs in SQL on both dialects (integer input, the C library's `log`), so
PostgreSQL and SQLite give identical figures.
"""

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

HOUR = timedelta(hours=1)
SETTLE = timedelta(minutes=2)
"""How long after an hour ends before it is rolled up: rows stamped just before the hour's end
by a transaction still committing (or a worker whose clock runs slightly behind) get in."""
BUCKETS_PER_LN = 100.49916001
"""1 / ln(1.01): buckets are 1 % wide (written out so that SQL and Python use the same float)."""

Range = tuple[datetime, datetime | None]
"""A half-open time range `[start, end)`; `end` None means up to now."""


def hour_number(at: datetime) -> int:
    """Hours since the Unix epoch (UTC) of the hour containing `at`: the rollups' key."""
    return math.floor(at.timestamp() / 3600)


def hour_start(number: int) -> datetime:
    """The first instant of hour `number`."""
    return datetime.fromtimestamp(number * 3600, UTC)


def bucket(ms: float) -> int:
    """The histogram bucket of a duration (the SQL in `server.db.sql.bucket` mirrors this)."""
    whole = round(ms)
    return -1 if whole < 1 else math.floor(math.log(whole) * BUCKETS_PER_LN)


@dataclass(frozen=True, slots=True)
class Split:
    """A window `[since, now]` cut into rolled hours `[first_hour, end_hour)` and live ranges."""

    since: datetime
    first_hour: int
    end_hour: int
    live: tuple[Range, ...]

    @property
    def rolled(self) -> bool:
        """Whether any hour of the window comes from the rollups."""
        return self.end_hour > self.first_hour

    def hours(self) -> range:
        """The rolled hours."""
        return range(self.first_hour, self.end_hour)


def split(since: datetime, now: datetime, *, rollups: bool = True) -> Split:
    """Cut `[since, now]`: whole hours that ended by `now - SETTLE` are rolled, the rest live."""
    first = math.ceil(since.timestamp() / 3600)
    end = hour_number(now - SETTLE) if rollups else first
    if end <= first:
        return Split(since, first, first, ((since, None),))
    return Split(since, first, end, ((since, hour_start(first)), (hour_start(end), None)))


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

        Merged under their text keys first and converted once at the end: a day of hourly
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
