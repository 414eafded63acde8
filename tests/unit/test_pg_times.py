"""PostgreSQL's timestamps as text (`server.db.pg_times`): what asyncpg's binary codec gave."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.db import pg_times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-15 10:30:00.123456+00", datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)),
        ("2024-01-15 10:30:00+00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15 10:30:00.5+00", datetime(2024, 1, 15, 10, 30, 0, 500000, tzinfo=UTC)),
        (
            "2024-01-15 16:00:00.000001+05:30",
            datetime(2024, 1, 15, 10, 30, 0, 1, tzinfo=UTC),
        ),
        ("0001-01-01 00:00:00+00", datetime(1, 1, 1, tzinfo=UTC)),
        ("infinity", datetime.max.replace(tzinfo=UTC)),
        ("-infinity", datetime.min.replace(tzinfo=UTC)),
    ],
)
def test_decodes_postgres_iso_text(text: str, expected: datetime) -> None:
    decoded = pg_times.decode(text)
    assert decoded == expected
    assert decoded.utcoffset() is not None


def test_utc_times_come_back_with_the_utc_singleton() -> None:
    # `shapes.iso_z` takes its fast path on `tzinfo is UTC`.
    assert pg_times.decode("2024-01-15 10:30:00+00").tzinfo is UTC


def test_encodes_aware_times_exactly() -> None:
    moment = datetime(2024, 1, 15, 12, 30, 0, 7, tzinfo=timezone(timedelta(hours=2)))
    assert pg_times.decode(pg_times.encode(moment)) == moment


def test_naive_times_are_local_as_asyncpg_reads_them() -> None:
    naive = datetime(2024, 1, 15, 10, 30)  # noqa: DTZ001 (the case under test)
    assert pg_times.decode(pg_times.encode(naive)) == naive.astimezone(UTC)


def test_other_values_are_refused() -> None:
    with pytest.raises(TypeError):
        pg_times.encode("2024-01-15")
