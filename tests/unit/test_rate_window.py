"""A rate limit's buckets (`server.domain.rate_window`): bounded, never over the limit in any
window of the history, and close to the limit when saturated."""

from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain import rate_window as rw

KEEP = 60.0


def admit_all(times: list[float], limit: int, period: float) -> tuple[list[float], rw.Buckets]:
    """Claims at these times (in the order given), each admitted when the buckets say so."""
    buckets: rw.Buckets = []
    admitted: list[float] = []
    for t in times:
        if rw.room_at(buckets, t, period, limit) is None:
            buckets = rw.read(rw.stored(rw.after_start(buckets, t, period, limit, KEEP)))
            admitted.append(t)
    return admitted, buckets


def most_in_a_window(starts: list[float], period: float) -> int:
    ordered = sorted(starts)
    return max(
        (sum(1 for s in ordered if first <= s < first + period) for first in ordered), default=0
    )


@settings(max_examples=500, deadline=None)
@given(
    limit=st.integers(1, 12),
    period=st.sampled_from([1.0, 10.0, 60.0]),
    gaps=st.lists(st.one_of(st.floats(0, 0.02), st.floats(0, 3.0)), min_size=1, max_size=80),
    lags=st.lists(st.one_of(st.just(0.0), st.floats(0, 5.0)), min_size=80, max_size=80),
)
def test_no_window_of_the_history_holds_more_than_the_limit(
    limit: int, period: float, gaps: list[float], lags: list[float]
) -> None:
    # Claims arrive in order but carry times read up to 5 s before they got the lock.
    arrival = 1_800_000_000.0
    times = []
    for gap, lag in zip(gaps, lags, strict=False):
        arrival += gap
        times.append(arrival - lag)
    admitted, _ = admit_all(times, limit, period)
    assert most_in_a_window(admitted, period) <= limit


def test_a_saturated_key_gets_its_rate_and_keeps_a_bounded_row() -> None:
    # 20,000 a minute asked of a key 500 times a second for 90 s: the window's starts used
    # to be kept one by one (up to 20,000 numbers a row, all rewritten by every start).
    limit, period = 20_000, 60.0
    start = 1_800_000_000.0
    buckets: rw.Buckets = []
    admitted = 0
    longest = 0
    for i in range(45_000):
        t = start + i / 500
        if rw.room_at(buckets, t, period, limit) is None:
            buckets = rw.after_start(buckets, t, period, limit, KEEP)
            admitted += 1
            longest = max(longest, len(buckets))
    assert longest <= rw.BUCKETS_PER_PERIOD + 2
    # The exact sliding window admits the first 40 s (20,000), then from 60 s on the 500 a
    # second whose first 30 s of starts have left it (15,000); buckets may hold each start a
    # hundredth of the period longer.
    assert 0.98 * 35_000 <= admitted <= 35_000


def test_a_refused_start_learns_when_the_window_opens() -> None:
    period, limit = 10.0, 3
    t0 = 1_800_000_000.0
    admitted, buckets = admit_all([t0, t0 + 4, t0 + 8, t0 + 9], limit, period)
    assert admitted == [t0, t0 + 4, t0 + 8]
    room = rw.room_at(buckets, t0 + 9, period, limit)
    # The oldest start leaves the window at +10 s (its bucket rounds up by < 0.1 s).
    assert room is not None and t0 + period <= room < t0 + period + period / 100 + 1e-6
    assert rw.room_at(buckets, room + 1e-3, period, limit) is None


def test_rows_written_as_bare_times_read_as_one_start_each() -> None:
    t0 = 1_800_000_000.0
    assert rw.read([t0, t0, t0 + 1]) == [(t0, 2), (t0 + 1, 1)]
    assert rw.read([[t0, 3], t0]) == [(t0, 4)]
    assert rw.in_window(rw.read([t0, t0 + 5]), t0 + 10, 10.0) == 1


def test_a_start_counts_for_its_whole_window_wherever_it_falls_in_its_bucket() -> None:
    period = 1.0
    t0 = 1_800_000_000.0
    for step in range(25):
        at = t0 + step * 0.001  # across two and a half buckets of 10 ms
        buckets = rw.after_start([], at, period, 1, KEEP)
        just_before = at + period - 0.0005
        room = rw.room_at(buckets, just_before, period, 1)
        assert room is not None and room >= at + period, step
