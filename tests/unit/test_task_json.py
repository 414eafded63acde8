"""The hot task reads are encoded by orjson from plain values (`operations.render_json`);
the document must be the one pydantic writes from the declared shapes."""

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from rest_compat import serializers, shapes
from rest_compat.operations import render_json
from server.domain.states import TaskState
from server.domain.views import TaskPage, TaskView

CONTEXTS: list[Any] = [
    {"order_id": 12345, "amount": 99.99, "items": [{"sku": "é✓", "qty": 2}], "gift": None},
    None,
    "plain text",
    [1, 2.5, True, {"nested": {"deep": []}}],
    {"nan": math.nan, "inf": math.inf},
    {"huge": 2**70},
]
MOMENTS = [
    datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
    datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC),
    datetime(2024, 1, 15, 10, 30, 0, 999, tzinfo=UTC),
    datetime(2024, 1, 15, 12, 30, 0, 5000, tzinfo=timezone(timedelta(hours=2))),
    datetime(2024, 1, 15, 10, 30, 0, 250000),  # noqa: DTZ001 (naive times are read as UTC)
]


def _task(context: Any, moment: datetime, status: TaskState) -> TaskView:
    return TaskView(
        id=uuid4(),
        namespace="payments",
        name="process_payment",
        version="1.2.0",
        status=status,
        context=context,
        created_at=moment,
        updated_at=moment + timedelta(seconds=1),
    )


def _tasks() -> list[TaskView]:
    states = list(TaskState)
    return [
        _task(context, moment, states[(i + j) % len(states)])
        for i, context in enumerate(CONTEXTS)
        for j, moment in enumerate(MOMENTS)
    ]


def _by_pydantic(shape: type[shapes.Shape], body: dict[str, Any]) -> Any:
    return json.loads(shape.model_validate(body).model_dump_json(by_alias=True))


@pytest.mark.parametrize("task", _tasks(), ids=lambda t: f"{type(t.context).__name__}")
def test_a_task_reads_as_pydantic_writes_it(task: TaskView) -> None:
    body = serializers.task_json(task)
    response = render_json(body, shapes.TaskOut)
    assert json.loads(response.body) == _by_pydantic(shapes.TaskOut, body)


def test_a_page_reads_as_pydantic_writes_it() -> None:
    tasks = [t for t in _tasks() if not isinstance(t.context, dict) or "huge" not in t.context]
    body = serializers.task_list(TaskPage(tuple(tasks), 51), current_page=2, per_page=25)
    sent = json.loads(render_json(body, shapes.TaskList).body)
    assert sent == _by_pydantic(shapes.TaskList, body)
    assert sent["pagination"] == {
        "current_page": 2,
        "per_page": 25,
        "total_pages": 3,
        "total_count": 51,
    }


def test_times_are_utc_milliseconds_with_a_z() -> None:
    written = [shapes.iso_z(m) for m in MOMENTS]
    assert written == [
        "2024-01-15T10:30:00.000Z",
        "2024-01-15T10:30:00.123Z",
        "2024-01-15T10:30:00.000Z",
        "2024-01-15T10:30:00.005Z",
        "2024-01-15T10:30:00.250Z",
    ]


def test_integers_beyond_64_bits_fall_back_to_pydantic() -> None:
    task = _task({"huge": 2**70}, MOMENTS[0], TaskState.PENDING)
    response = render_json(serializers.task_json(task), shapes.TaskOut, 201)
    assert response.status_code == 201
    assert json.loads(response.body)["context"] == {"huge": 2**70}
