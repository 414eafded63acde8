"""Load-time checks of `task:` and `map_over:` step templates: each refusal names the file and
the step; the path helper reads context and parents alike."""

import pytest

from server.domain.errors import TemplateInvalid
from server.domain.templates import ChildTaskSpec
from server.domain.value_paths import BadPath, resolve
from server.registry.definitions import parse_definition
from server.registry.dynamic_steps import CHILD_TASK_HANDLER

WORK = "tests.support.map_steps:Echo"


def handler(*steps: dict[str, object]) -> dict[str, object]:
    return {"namespace_name": "ns", "name": "h", "version": "1.0.0", "step_templates": list(steps)}


def parse(*steps: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_definition(handler(*steps), source="h.yaml").template


def test_a_task_step_needs_no_handler_class() -> None:
    template = parse(
        {"name": "a", "handler_class": WORK},
        {"name": "b", "depends_on_step": "a",
         "task": {"namespace": "x", "name": "y", "context_from": "parents.a.results.ctx"}},
    )  # fmt: skip
    step = template.step("b")
    assert step.handler_class == CHILD_TASK_HANDLER
    assert step.child_task == ChildTaskSpec("x", "y", None, "parents.a.results.ctx")


def test_a_map_step_keeps_its_path_and_limit() -> None:
    template = parse({"name": "m", "handler_class": WORK, "map_over": "context.items"})
    assert (template.step("m").map_over, template.step("m").max_parallel) == ("context.items", 10)


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"task": {"namespace": "x"}}, "'task.name' must be a non-empty string"),
        ({"task": {"namespace": "x", "name": "y", "bogus": 1}}, "unknown keys ['bogus']"),
        (
            {"task": {"namespace": "x", "name": "y"}, "handler_class": WORK},
            "takes no handler_class",
        ),
        ({"task": {"namespace": "x", "name": "y", "context_from": "ctx.a"}}, "must start with"),
        ({"task": "x.y"}, "'task' must be a mapping"),
        ({"handler_class": WORK, "max_parallel": 3}, "'max_parallel' needs 'map_over'"),
        ({"handler_class": WORK, "map_over": "context.a", "max_parallel": 0}, "positive integer"),
        ({"handler_class": WORK, "map_over": "parents.z.results.a"}, "not a parent of this step"),
        ({"handler_class": WORK, "map_over": "parents.z.items"}, "parents.<step>.results"),
    ],
)
def test_bad_dynamic_steps_are_refused_naming_file_and_step(
    step: dict[str, object], problem: str
) -> None:
    with pytest.raises(TemplateInvalid) as raised:
        parse({"name": "s", **step})
    assert str(raised.value).startswith("h.yaml: step 's': ")
    assert problem in str(raised.value)


def test_paths_read_context_parents_and_list_indexes() -> None:
    context = {"a": {"b": [10, {"c": "deep"}]}}
    parents = {"p": {"items": [1, 2]}}
    assert resolve("context.a.b.1.c", context, parents) == "deep"
    assert resolve("parents.p.results.items", context, parents) == [1, 2]
    assert resolve("context", context, parents) == context
    with pytest.raises(BadPath, match=r"context\.a\.x"):
        resolve("context.a.x", context, parents)
    with pytest.raises(BadPath, match="names no parent"):
        resolve("parents.q.results", context, parents)
