"""Task rows are read by position (`server.db.reads.task_view_of`)."""

from datetime import UTC, datetime
from uuid import uuid4

from server.db.reads import COLUMNS, task_view_of
from server.domain.states import TaskState
from server.domain.views import TaskView


def test_the_columns_are_the_view_fields_in_order() -> None:
    assert TaskView._fields == COLUMNS


def test_a_driver_row_reads_into_every_field() -> None:
    ident, moment = uuid4(), datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    row = (
        str(ident),
        "payments",
        "process_payment",
        "1.0.0",
        "complete",
        '{"order": 1}',
        "2024-01-15 10:30:00+00:00",
        moment,
        "api",
        "web",
        "because",
        '["a", "b"]',
        "[]",
        "key-1",
        "hash",
        None,
        moment,
        "2024-01-15 10:30:00+00:00",
        str(ident),
        "2024-01-15 10:30:00+00:00",
        moment,
        None,
        3,
        str(ident),
        None,
        None,
    )
    assert task_view_of(row) == TaskView(
        id=ident,
        namespace="payments",
        name="process_payment",
        version="1.0.0",
        status=TaskState.COMPLETE,
        context={"order": 1},
        created_at=moment,
        updated_at=moment,
        initiator="api",
        source_system="web",
        reason="because",
        tags=("a", "b"),
        bypass_steps=(),
        idempotency_key="key-1",
        identity_hash="hash",
        requested_at=None,
        completed_at=moment,
        run_at=moment,
        schedule_id=ident,
        scheduled_for=moment,
        paused_at=moment,
        handler_paused_at=None,
        priority=3,
        forked_from=ident,
    )
