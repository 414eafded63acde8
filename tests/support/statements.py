"""The SQL statements a piece of code sends, read from Tortoise's client log (every query is
logged there at DEBUG, with its text first)."""

import logging
from collections.abc import Iterator

import pytest


class Statements(logging.Handler):
    """Collects the statements logged while installed (`statements` fixture)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())

    def writes(self) -> list[str]:
        """The statements seen that are not plain reads."""
        return [s for s in self.seen if not s.lstrip().upper().startswith("SELECT")]


@pytest.fixture
def statements() -> Iterator[Statements]:
    handler = Statements()
    log = logging.getLogger("tortoise.db_client")
    level = log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)
