"""Flow-control declarations in handler YAML: what loads, and the load-time errors naming the
file and the step."""

from typing import Any

import pytest

from server.domain.errors import TemplateInvalid
from server.domain.flow import KeyMissing, parse_period, resolve_key
from server.registry.definitions import parse_definition

WORK = "tests.support.steps:Work"


def definition(step: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {
        "namespace_name": "crm",
        "name": "sync",
        "version": "1.0.0",
        "step_templates": [{"name": "call", "handler_class": WORK, **(step or {})}],
        **top,
    }


def test_limits_load_with_their_defaults() -> None:
    data = definition(
        {"concurrency": {"key": "context.tenant", "limit": 3},
         "rate_limit": {"key": "context.tenant", "limit": 10, "period": "1m"}},
        concurrency={"key": "context.customer_id", "limit": 1},
        priority=3,
    )  # fmt: skip
    template = parse_definition(data, source="crm.yaml").template
    assert template.priority == 3
    assert template.concurrency is not None and template.concurrency.strategy == "queue"
    step = template.step("call")
    assert step.concurrency is not None and step.concurrency.limit == 3
    assert step.rate_limit is not None and step.rate_limit.period == 60.0
    plain = parse_definition(definition(), source="crm.yaml").template
    assert plain.priority == 2 and plain.concurrency is None
    assert plain.step("call").rate_limit is None


@pytest.mark.parametrize(
    ("step", "top", "words"),
    [
        ({"concurrency": {"limit": 0}}, {}, "limit must be an integer of at least 1"),
        ({"concurrency": {"limit": 2, "strategy": "queue"}}, {}, "unknown field"),
        ({"rate_limit": {"limit": 5, "period": "5 minutes"}}, {}, "does not parse"),
        ({"rate_limit": {"limit": 5}}, {}, "needs a period"),
        ({"rate_limit": {"limit": 5, "period": "1m", "key": "parents.a.x"}}, {}, "cannot resolve"),
        ({"concurrency": {"limit": 1, "key": "context..x"}}, {}, "not a dotted path"),
        ({"concurrency": "one"}, {}, "must be a mapping"),
    ],
)
def test_bad_step_limits_name_the_file_and_step(
    step: dict[str, Any], top: dict[str, Any], words: str
) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        parse_definition(definition(step, **top), source="crm.yaml")
    assert str(caught.value).startswith("crm.yaml: step 'call': ")
    assert words in str(caught.value)
    assert caught.value.details == {"file": "crm.yaml", "step": "call"}


@pytest.mark.parametrize(
    ("top", "words"),
    [
        ({"concurrency": {"limit": 1, "strategy": "newest"}}, "unknown strategy 'newest'"),
        ({"concurrency": {"limit": -1}}, "at least 1"),
        ({"priority": 5}, "priority must be 1, 2 or 3"),
        ({"priority": "high"}, "priority must be 1, 2 or 3"),
    ],
)
def test_bad_handler_limits_name_the_file(top: dict[str, Any], words: str) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        parse_definition(definition(**top), source="crm.yaml")
    assert str(caught.value).startswith("crm.yaml: ")
    assert words in str(caught.value)


def test_periods_and_keys() -> None:
    assert [parse_period(p) for p in ("10s", "1m", "1h", "1.5m", 30)] == [10, 60, 3600, 90, 30]
    for bad in ("0s", "1d", "", "m", -1, True):
        with pytest.raises(ValueError):
            parse_period(bad)
    context = {"customer": {"id": 7}, "flag": True, "items": ["a"]}
    assert resolve_key("context.customer.id", context) == "7"
    assert resolve_key("context.flag", context) == "true"
    assert resolve_key("context.items.0", context) == "a"
    assert resolve_key("global", context) == "global"
    assert resolve_key(None, context) == ""
    for absent in ("context.customer.name", "context.customer", "context.items.3"):
        with pytest.raises(KeyMissing):
            resolve_key(absent, context)
