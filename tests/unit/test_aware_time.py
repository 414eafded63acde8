"""Every surface reads a time the same way (`server.domain.inputs.aware_time`): any ISO 8601
time with a time zone, converted to UTC; one that leaves the calendar once in UTC is the
calendar's first or last moment, not a refusal that would call a valid time malformed."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.domain.inputs import aware_time

FIRST = datetime.min.replace(tzinfo=UTC)
LAST = datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-02-08T07:07:01+16:51", datetime(2026, 2, 7, 14, 16, 1, tzinfo=UTC)),
        ("2026-02-08T07:07:01Z", datetime(2026, 2, 8, 7, 7, 1, tzinfo=UTC)),
        (" 2026-02-08T07:07:01-18:30 ", datetime(2026, 2, 9, 1, 37, 1, tzinfo=UTC)),
        # Valid as written, outside the calendar in UTC: its first or last moment.
        ("0001-01-01T00:01:00+00:03", FIRST),
        ("0001-01-01T00:00:00+16:51", FIRST),
        ("9999-12-31T23:59:59-00:01", LAST),
        # At the edge and still inside: taken as it is.
        ("0001-01-01T00:03:00+00:03", FIRST),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_a_time_with_a_zone_is_its_instant_in_utc(written: str, expected: datetime) -> None:
    found = aware_time(written)
    assert found == expected
    assert found is not None and found.utcoffset() == timedelta(0)


@pytest.mark.parametrize("written", ["2026-02-08T07:07:01", "tomorrow", "", "2026-13-01T00:00Z"])
def test_a_time_without_a_zone_or_that_does_not_parse_is_none(written: str) -> None:
    assert aware_time(written) is None


def test_a_datetime_is_read_as_a_text_is() -> None:
    far = timezone(timedelta(hours=23, minutes=59))
    assert aware_time(datetime(1, 1, 1, tzinfo=far)) == FIRST
    assert aware_time(datetime(2026, 1, 1)) is None  # noqa: DTZ001 - a naive time, on purpose
