"""The access log keeps every failed or refused request and a share of the successful ones."""

import logging

from server.infra.access_log import AccessSampler


def record(status: int) -> logging.LogRecord:
    args = ("127.0.0.1:5000", "GET", "/tasker/tasks", "1.1", status)
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', args, None
    )


def test_failures_and_refusals_are_always_logged() -> None:
    sampler = AccessSampler(rate=0.0)
    assert all(sampler.filter(record(s)) for s in (400, 401, 403, 404, 422, 429, 500, 503))


def test_successes_are_sampled_at_the_rate() -> None:
    assert not any(AccessSampler(rate=0.0).filter(record(200)) for _ in range(100))
    assert all(AccessSampler(rate=1.0).filter(record(200)) for _ in range(100))
    kept = sum(AccessSampler(rate=0.1).filter(record(200)) for _ in range(10_000))
    assert 700 < kept < 1300


def test_other_records_pass() -> None:
    other = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "started", None, None)
    assert AccessSampler(rate=0.0).filter(other)
