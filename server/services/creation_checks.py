"""The rules a creation request must hold before anything is written, and what its rows are
worked out from (template, start, debounce, each step's limits). Every breach is one
InvalidTaskConfig, whichever surface asked."""

from datetime import datetime
from typing import Any, NamedTuple

from server.domain.errors import InvalidTaskConfig, ValidationFailed
from server.domain.flow import KeyMissing, priority_problem
from server.domain.inputs import (
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TAGS,
    MAX_VERSION_LENGTH,
    InputProblems,
    start_time,
)
from server.domain.templates import HandlerTemplate
from server.domain.views import CreateTask
from server.domain.waits import context_problems
from server.engine.limits import step_flow
from server.registry.handler_registry import HandlerRegistry
from server.services.debounce import Debounce, debounce_of


def input_problems(req: CreateTask) -> dict[str, list[str]]:
    """What breaks the shared input rules (NUL, lengths, JSON numbers, depth, size)."""
    problems = InputProblems()
    problems.text("namespace", req.namespace, MAX_NAME_LENGTH)
    problems.text("name", req.name, MAX_NAME_LENGTH)
    problems.text("version", req.version, MAX_VERSION_LENGTH)
    problems.text("idempotency_key", req.idempotency_key, MAX_KEY_LENGTH)
    problems.text("initiator", req.initiator, MAX_KEY_LENGTH)
    problems.text("source_system", req.source_system, MAX_KEY_LENGTH)
    problems.text("reason", req.reason, MAX_REASON_LENGTH)
    problems.texts("tags", req.tags, MAX_KEY_LENGTH, MAX_TAGS)
    problems.texts("bypass_steps", req.bypass_steps, MAX_NAME_LENGTH)
    problems.json("context", req.context)
    details = problems.details
    if (problem := priority_problem(req.priority)) is not None:
        details.setdefault("priority", []).append(problem)
    return details


class Checked(NamedTuple):
    """A request that holds every input rule, with what its rows are worked out from."""

    template: HandlerTemplate
    start: datetime | None
    """The delayed start (None: at once)."""
    debounce: Debounce | None
    flows: dict[str, Any]
    """Each step's limits with keys resolved."""


def one_by_one(checked: Checked, req: CreateTask) -> bool:
    """Whether a request is written on its own rather than by the multi-row insert: its
    transaction holds more than its rows (a schedule tick, a debounce window, kept steps) or
    a cancel strategy acts on it once written."""
    concurrency = checked.template.concurrency
    return bool(
        checked.debounce is not None
        or req.fired is not None
        or req.forked_from is not None
        or req.kept
        or req.step_inputs
        or (concurrency is not None and concurrency.strategy != "queue")
    )


def check_request(req: CreateTask, registry: HandlerRegistry, now: datetime) -> Checked:
    """The request's template, start, debounce and limits, once every rule holds
    (InvalidTaskConfig otherwise)."""
    try:
        template, start, flows = _validated(req, registry, now)
        return Checked(template, start, debounce_of(template, req), flows)
    except ValidationFailed as exc:
        if isinstance(exc, InvalidTaskConfig):
            raise
        raise InvalidTaskConfig.of(exc.details or {}) from exc


def _validated(
    req: CreateTask, registry: HandlerRegistry, now: datetime
) -> tuple[HandlerTemplate, datetime | None, dict[str, Any]]:
    """The template to run, the start time (None: at once) and each step's limits, once
    every input rule holds (ValidationFailed otherwise)."""
    if not isinstance(req.context, dict):
        raise InvalidTaskConfig.of({"context": ["must be a JSON object"]})
    problems = input_problems(req)
    timing = InputProblems()
    start = start_time(timing, req.run_at, req.delay_seconds, now)
    problems.update(timing.details)
    if problems:
        raise InvalidTaskConfig.of(problems)
    template = registry.get(req.namespace, req.name, req.version)
    registry.validate_context(template, req.context)
    problems = {}
    for name in req.bypass_steps:
        try:
            if not template.step(name).skippable:
                problems.setdefault("bypass_steps", []).append(f"step '{name}' is not skippable")
        except KeyError:
            problems.setdefault("bypass_steps", []).append(f"unknown step '{name}'")
    flows = _flows(template, req)
    if isinstance(flows, str):
        problems["context"] = [f"limit key path '{flows}' resolves to nothing"]
    for step in template.steps:  # `sleep.until: context.<path>` must resolve now
        problems.update(context_problems(step.sleep, req.context))
    if problems or isinstance(flows, str):
        raise InvalidTaskConfig.of(problems)
    return template, start, flows


def _flows(template: HandlerTemplate, req: CreateTask) -> dict[str, Any] | str:
    """Each step's limits with keys resolved, or the key path that is absent."""
    priority = req.priority if req.priority is not None else template.priority
    try:
        return {s.name: step_flow(template, s, req.context, priority) for s in template.steps}
    except KeyMissing as exc:
        return str(exc.args[0])
