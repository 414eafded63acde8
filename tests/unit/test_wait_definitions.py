"""Built-in `sleep` / `wait_for` steps in handler YAML: what loads, and load-time errors that
name the file and the step."""

from typing import Any

import pytest

from server.domain.errors import TemplateInvalid
from server.domain.waits import SleepSpec, WaitSpec, builtin_kind
from server.registry.definitions import parse_definition

WORK = "tests.support.steps:Work"


def definition(step: dict[str, Any]) -> dict[str, Any]:
    return {
        "namespace_name": "waits",
        "name": "flow",
        "version": "1.0.0",
        "step_templates": [{"name": "first", "handler_class": WORK}, {"name": "hold", **step}],
    }


def load(step: dict[str, Any]) -> Any:
    return parse_definition(definition(step), source="flow.yaml").template.step("hold")


def refused(step: dict[str, Any]) -> str:
    with pytest.raises(TemplateInvalid) as caught:
        load(step)
    message = caught.value.message
    assert message.startswith("flow.yaml: step 'hold': "), message
    assert caught.value.details == {"file": "flow.yaml", "step": "hold"}
    return message


def test_sleep_and_wait_for_load_without_a_handler_class() -> None:
    nap = load({"sleep": {"seconds": 600}})
    assert nap.sleep == SleepSpec(seconds=600.0) and builtin_kind(nap.handler_class) == "sleep"
    until = load({"sleep": {"until": "parents.first.results.at"}})
    assert until.sleep == SleepSpec(until="parents.first.results.at")
    wait = load({"wait_for": {"signal": "approved", "timeout_seconds": 60, "on_timeout": "skip"}})
    assert wait.wait_for == WaitSpec("approved", 60.0, "skip")
    assert builtin_kind(wait.handler_class) == "wait_for"
    assert load({"wait_for": {"signal": "go"}}).wait_for == WaitSpec("go", None, "fail")


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"sleep": {"seconds": -1}}, "'sleep.seconds' must not be negative"),
        ({"sleep": {"seconds": "soon"}}, "'sleep.seconds' must be a number of seconds"),
        ({"sleep": {"seconds": 1, "until": "context.at"}}, "exactly one of"),
        ({"sleep": {}}, "exactly one of"),
        ({"sleep": {"seconds": 1, "minutes": 2}}, "unknown key 'minutes'"),
        ({"sleep": {"until": "at"}}, "must start with context.<key> or parents.<step>.<key>"),
        ({"sleep": 10}, "'sleep' must be a mapping"),
        ({"wait_for": {"signal": "go", "on_timeout": "retry"}}, "must be one of fail, skip"),
        ({"wait_for": {"signal": "go", "timeout_seconds": -5}}, "must not be negative"),
        ({"wait_for": {"timeout_seconds": 5}}, "'wait_for.signal' must be a non-empty name"),
        ({"wait_for": {"signal": "go", "timout_seconds": 5}}, "unknown key 'timout_seconds'"),
        ({"wait_for": {"signal": "go"}, "handler_class": WORK}, "takes no handler_class"),
        ({"sleep": {"seconds": 1}, "wait_for": {"signal": "go"}}, "not both"),
    ],
)
def test_load_time_errors_name_the_file_and_the_step(step: dict[str, Any], problem: str) -> None:
    assert problem in refused(step)
