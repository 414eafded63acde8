"""How a report window is cut into rolled hours, rolled five-minute slots and live ranges."""

from datetime import UTC, datetime, timedelta

from server.domain.analytics_rollup import FIVE_MINUTES, HOUR, Block, slot_number, split

M, H = timedelta(minutes=1), timedelta(hours=1)
NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 6, 1, hour, minute, second, tzinfo=UTC)


def test_a_day_is_hours_with_five_minute_margins_and_minutes_live() -> None:
    now = _at(12, 37, 13)
    window = split(now - 24 * H, now)
    since = now - 24 * H  # 12:37:13 the day before
    hours = Block(HOUR, slot_number(since) + 1, slot_number(_at(12, 0)))
    head = Block(FIVE_MINUTES, slot_number(since + 3 * M, FIVE_MINUTES), hours.first * 12)
    tail = Block(FIVE_MINUTES, hours.end * 12, slot_number(_at(12, 35), FIVE_MINUTES))
    assert window.blocks == (head, hours, tail)
    assert head.start == since.replace(minute=40, second=0)
    assert tail.stop == _at(12, 35)
    assert window.live == ((since, head.start), (_at(12, 35), None))
    assert window.covers(FIVE_MINUTES, head.first) and window.covers(HOUR, hours.end - 1)
    assert not window.covers(HOUR, hours.end)


def test_a_slot_is_rolled_only_once_it_has_settled() -> None:
    # At 12:06:59 the slot 12:00-12:05 is still settling (two minutes); at 12:07 it is rolled.
    assert split(_at(11, 30), _at(12, 6, 59)).blocks[-1].stop == _at(12, 0)
    assert split(_at(11, 30), _at(12, 7)).blocks[-1].stop == _at(12, 5)


def test_a_short_window_is_five_minute_slots() -> None:
    window = split(NOON - H, NOON)
    assert window.blocks == (
        Block(FIVE_MINUTES, slot_number(NOON - H, FIVE_MINUTES), slot_number(_at(11, 55), 300)),
    )
    assert window.live == ((_at(11, 55), None),)  # an aligned start leaves no live head


def test_windows_too_short_to_settle_and_the_live_only_mode_are_all_live() -> None:
    for window in (split(NOON - 3 * M, NOON), split(NOON - 24 * H, NOON, rollups=False)):
        assert not window.rolled
        assert window.live == ((window.since, None),)


def test_the_rolled_part_is_contiguous() -> None:
    for offset in range(0, 3600, 97):
        now = NOON + timedelta(seconds=offset)
        window = split(now - 4 * H, now)
        stops = [b.stop for b in window.blocks[:-1]]
        starts = [b.start for b in window.blocks[1:]]
        assert stops == starts
        assert sum(1 for _ in window.slots()) == sum(b.end - b.first for b in window.blocks)
