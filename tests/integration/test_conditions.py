"""Conditions (`run_if`): a false condition skips the step without calling its handler (no
`in_progress` move), its children see it done; a path that does not resolve fails the step
for good with BAD_PATH; load errors name the file and the step. On every step store."""

import pytest

from server.container import Services
from server.db.models import Transition
from server.domain.errors import TemplateInvalid
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from server.registry.definitions import parse_definition
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import DYNAMIC, WORKFLOWS, on_every_store
from tests.support.dynamic_steps import CALLS
from tests.support.waiting import wait_for_task


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    """The usual workflows plus the dynamic ones."""
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


async def run(engine: Services, name: str, context: dict[str, object]) -> str:
    view, _ = await engine.tasks.create_task(CreateTask("dynamic", name, context))
    done = await wait_for_task(engine, view.id)
    return str(done.id)


async def moves(task_id: str, step: str) -> list[tuple[str | None, str, str]]:
    rows = await Transition.filter(task_id=task_id, step_name=step).order_by("id")
    return [(r.from_status, r.to_status, r.reason) for r in rows]


@on_every_store
async def test_false_condition_skips_without_running(engine: Services) -> None:
    task_id = await run(engine, "fraud", {"returns": {"check_fraud": {"risk": "low"}}})
    task = await engine.tasks.get_task(task_id)
    assert task.status is TaskState.COMPLETE
    steps = {s.name: s for s in await engine.steps.list_steps(task_id)}
    assert steps["approve"].skipped is False and steps["approve"].results == {"step": "approve"}
    review = steps["review"]
    assert review.status is StepState.COMPLETE and review.skipped and review.results is None
    assert steps["archive"].skipped  # `exists` on a missing key is false, not an error
    assert steps["notify"].status is StepState.COMPLETE and not steps["notify"].skipped
    assert CALLS[(task_id, "review")] == 0 and CALLS[(task_id, "archive")] == 0
    assert CALLS[(task_id, "notify")] == 1
    assert await moves(task_id, "review") == [
        (None, "pending", "created"),
        ("pending", "complete", "condition_false"),
    ]


@on_every_store
async def test_other_branch(engine: Services) -> None:
    context = {"returns": {"check_fraud": {"risk": "high", "flagged": True}}}
    task_id = await run(engine, "fraud", context)
    steps = {s.name: s for s in await engine.steps.list_steps(task_id)}
    assert steps["approve"].skipped and not steps["review"].skipped
    assert not steps["archive"].skipped and CALLS[(task_id, "archive")] == 1


@on_every_store
async def test_unresolved_path_fails_with_bad_path(engine: Services) -> None:
    task_id = await run(engine, "bad_path", {"returns": {"a": {"score": 3}}})
    task = await engine.tasks.get_task(task_id)
    assert task.status is TaskState.ERROR
    b = (await engine.steps.list_steps(task_id))[1]
    assert b.name == "b" and b.status is StepState.ERROR and b.error_class == "BAD_PATH"
    assert "parents.a.results.score.value" in (b.last_error or "")
    assert CALLS[(task_id, "b")] == 0 and CALLS[(task_id, "c")] == 0


def definition(run_if: str) -> dict[str, object]:
    return {
        "name": "x",
        "namespace_name": "dynamic",
        "version": "1.0.0",
        "step_templates": [
            {"name": "a", "handler_class": "tests.support.dynamic_steps:Echo"},
            {"name": "side", "handler_class": "tests.support.dynamic_steps:Echo"},
            {
                "name": "b",
                "handler_class": "tests.support.dynamic_steps:Echo",
                "depends_on_step": "a",
                "run_if": run_if,
            },
        ],
    }


@pytest.mark.parametrize(
    ("run_if", "problem"),
    [
        ("parents.a.results.risk ==", "does not parse"),
        ("parents.nope.results.x == 1", "step 'nope'"),
        ("parents.side.results.x == 1", "not an ancestor"),
        ("os.system == 1", "only parents"),
    ],
)
def test_load_errors_name_file_and_step(run_if: str, problem: str) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        parse_definition(definition(run_if), source="flows/x.yaml")
    assert str(caught.value).startswith("flows/x.yaml: step 'b': ")
    assert problem in str(caught.value)
