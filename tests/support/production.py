"""What the production-mode tests share: their markers and reading a Prometheus scrape."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BACKEND, REDIS_URL

PRODUCTION_ONLY = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.skipif(
        BACKEND != "postgres" or not REDIS_URL,
        reason="needs TASKER_TEST_BACKEND=postgres and TASKER_TEST_REDIS_URL",
    ),
]
"""`pytestmark` of a test module that needs PostgreSQL, Redis and real worker processes."""


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` carrying these labels, in a scrape's text."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
