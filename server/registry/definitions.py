"""Handler definition files: parse and validate one YAML file into a `HandlerTemplate`.

This module owns Tasker's definition format (DESIGN.md §5.1) and the import of step-handler
classes; versions are checked by `server.domain.versions`. Every rejection is a
`TemplateInvalid` whose message starts with the file and, where one is involved, the step
(`payments.yaml: step 'charge_card': ...`); its `details` carry the same two facts as `file`
and `step`.

`environments.<env>.step_templates` entries are merged into the step of the same name, mappings
(such as `handler_config`) key by key; overrides for every environment must name known steps,
so a typo in the production block is caught on a developer's machine.
"""

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import SchemaError
from jsonschema.validators import Draft202012Validator, validator_for

from server.domain.dag import GraphError, StepGraph
from server.domain.errors import TemplateInvalid
from server.domain.flow import FlowSpecError, parse_concurrency, parse_priority, parse_rate_limit
from server.domain.inputs import MAX_DELAY_SECONDS
from server.domain.templates import HandlerTemplate, StepTemplate
from server.domain.versions import is_semver
from server.domain.waits import (
    KINDS,
    SLEEP,
    WAIT_FOR,
    SleepSpec,
    WaitSpec,
    builtin_class,
    parse_sleep,
    parse_wait,
)
from server.handlers.base import StepHandler
from server.registry.dynamic_steps import CHILD_TASK_HANDLER, DYNAMIC_FIELDS, child_task, map_fields
from server.registry.run_if import ConditionInvalid, check_parents, compile_condition
from server.registry.schedule_yaml import parse_schedules

HTTP_HANDLER_CLASS = "server.handlers.http:HttpStepHandler"
"""The handler a step gets when its `handler_config.type` is `http` and it names no class."""

STEP_FIELDS = frozenset({
    "name", "description", "handler_class", "depends_on_step", "depends_on_steps",
    "default_retryable", "default_retry_limit", "skippable", "timeout_seconds",
    "handler_config", "custom_events", "dependent_system", "concurrency", "rate_limit",
    "sleep", "wait_for", "run_if",
}) | DYNAMIC_FIELDS  # fmt: skip


def import_handler_class(spec: str) -> type[StepHandler]:
    """Import `package.module:ClassName` or `package.module.ClassName`.

    Raises ValueError when it cannot be imported and TypeError when it is not a StepHandler.
    """
    module_name, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"'{spec}' is not of the form package.module:ClassName")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a broken module can raise anything; report it, don't crash the load
        raise ValueError(f"cannot import '{spec}': {exc}") from exc
    try:
        target: object = reduce(getattr, attr.split("."), module)
    except AttributeError as exc:
        raise ValueError(f"cannot import '{spec}': module has no attribute '{attr}'") from exc
    if not (isinstance(target, type) and issubclass(target, StepHandler)):
        raise TypeError(f"'{spec}' is not a subclass of server.handlers.StepHandler")
    return target


@dataclass(frozen=True, slots=True)
class Definition:
    """A parsed file: the template plus the namespace description it may carry."""

    template: HandlerTemplate
    namespace_description: str | None = None


def load_definition(path: Path, *, environment: str = "development") -> HandlerTemplate:
    """Parse one handler YAML file into a validated template (TemplateInvalid if it is not)."""
    return read_definition(path, environment=environment).template


def read_definition(path: Path, *, environment: str = "development") -> Definition:
    """Like `load_definition`, also returning the file's `namespace_description`."""
    return parse_definition(read_yaml(path), source=str(path), environment=environment)


def read_yaml(path: Path) -> object:
    """The YAML document in `path`; TemplateInvalid naming the file if it cannot be read."""
    where = _Where(str(path))
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise where.error(f"cannot read file: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise where.error(f"invalid YAML: {exc}") from exc


def parse_definition(data: object, *, source: str, environment: str = "development") -> Definition:
    """Validate already-loaded YAML `data`; `source` names it in error messages."""
    where = _Where(source)
    if not isinstance(data, dict):
        raise where.error("expected a mapping at the top level")
    namespace = where.required_text(data, "namespace_name")
    name = where.required_text(data, "name")
    version = where.required_text(data, "version")
    if not is_semver(version):
        raise where.error(f"version '{version}' is not a valid semantic version (e.g. 1.2.0)")
    default_system = where.text(data, "default_dependent_system")
    steps = tuple(
        _parse_step(raw, _Where(source, raw["name"]), default_system)
        for raw in _raw_steps(data, where, environment)
    )
    named_steps = where.names(data, "named_steps")
    for step in steps:
        if named_steps and step.name not in named_steps:
            raise _Where(source, step.name).error("not listed in named_steps")
    try:
        graph = StepGraph.build({step.name: step.depends_on for step in steps})
    except GraphError as exc:
        raise _Where(source, exc.step).error(str(exc)) from exc
    context_schema = _context_schema(data, where)
    for step in steps:
        _check_condition(step, graph, _Where(source, step.name))
    template = HandlerTemplate(
        namespace=namespace,
        name=name,
        version=version,
        steps=steps,
        graph=graph,
        description=where.text(data, "description"),
        context_schema=context_schema,
        default_dependent_system=default_system,
        named_steps=named_steps,
        source=source,
        schedules=parse_schedules(
            data.get("schedules"), source=source, context_schema=context_schema
        ),
        debounce=_debounce(data, where),
        **_handler_flow(data, where),
    )
    return Definition(template, where.text(data, "namespace_description"))


def _raw_steps(data: dict[str, Any], where: "_Where", environment: str) -> list[dict[str, Any]]:
    """The step mappings with this environment's overrides merged in; names checked unique."""
    raw = data.get("step_templates")
    if not isinstance(raw, list) or not raw:
        raise where.error("'step_templates' must be a non-empty list")
    steps: dict[str, dict[str, Any]] = {}
    for index, step in enumerate(raw, start=1):
        if not isinstance(step, dict):
            raise _Where(where.source, f"#{index}").error("expected a mapping")
        name = _Where(where.source, f"#{index}").required_text(step, "name")
        if name in steps:
            raise _Where(where.source, name).error("duplicate step name")
        steps[name] = step
    environments = data.get("environments") or {}
    if not isinstance(environments, dict):
        raise where.error("'environments' must map environment names to overrides")
    for env, block in environments.items():
        for override in _overrides(block, where, str(env)):
            name = override["name"]
            if name not in steps:
                problem = f"environment '{env}' overrides no such step"
                raise _Where(where.source, name).error(problem)
            if env == environment:
                steps[name] = _merge(steps[name], override)
    return list(steps.values())


def _overrides(block: object, where: "_Where", env: str) -> list[dict[str, Any]]:
    if block is None:
        return []
    if not isinstance(block, dict):
        raise where.error(f"environment '{env}' must be a mapping")
    overrides = block.get("step_templates") or []
    if not isinstance(overrides, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in overrides
    ):
        raise where.error(f"environment '{env}': step_templates must be mappings with a 'name'")
    return overrides


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = _merge(old, value)
        else:
            merged[key] = value
    return merged


def _parse_step(raw: dict[str, Any], where: "_Where", default_system: str | None) -> StepTemplate:
    for key in raw:
        if key not in STEP_FIELDS:
            hints = difflib.get_close_matches(str(key), STEP_FIELDS, n=1)
            hint = f" (did you mean '{hints[0]}'?)" if hints else ""
            raise where.error(f"unknown field '{key}'{hint}")
    config = where.mapping(raw, "handler_config")
    child = child_task(raw, where.error)
    map_over, max_parallel = map_fields(raw, where.error)
    handler_class = CHILD_TASK_HANDLER if child else where.text(raw, "handler_class")
    sleep, wait_for, builtin = _builtin_kind(raw, where, None if child else handler_class)
    if builtin is not None:
        handler_class = builtin
    kind = config.get("type")
    if handler_class is None and kind == "http":
        handler_class = HTTP_HANDLER_CLASS
    if handler_class is None and kind is not None:
        # A typo in the type would otherwise read as a missing handler_class.
        raise where.error(
            f"unknown handler_config.type '{kind}' (the built-in type is 'http'; "
            "otherwise give a handler_class)"
        )
    if handler_class is None:
        raise where.error("missing required field 'handler_class'")
    try:
        if builtin is None and child is None:
            import_handler_class(handler_class)
    except (ValueError, TypeError) as exc:
        raise where.error(f"unusable handler_class: {exc}") from exc
    depends_on_step = where.text(raw, "depends_on_step")
    parents = [depends_on_step] if depends_on_step else []
    parents += where.names(raw, "depends_on_steps")
    return StepTemplate(
        name=where.required_text(raw, "name"),
        handler_class=handler_class,
        description=where.text(raw, "description"),
        depends_on=tuple(dict.fromkeys(parents)),
        retryable=where.flag(raw, "default_retryable", default=True),
        retry_limit=where.count(raw, "default_retry_limit", default=3),
        skippable=where.flag(raw, "skippable", default=False),
        timeout_seconds=where.seconds(raw, "timeout_seconds"),
        handler_config=config,
        custom_events=_custom_events(raw, where),
        dependent_system=where.text(raw, "dependent_system") or default_system,
        depends_on_step=depends_on_step,
        **_step_flow(raw, where),
        sleep=sleep,
        wait_for=wait_for,
        run_if=where.text(raw, "run_if"),
        child_task=child,
        map_over=map_over,
        max_parallel=max_parallel,
    )


def _handler_flow(data: dict[str, Any], where: "_Where") -> dict[str, Any]:
    """A handler's `concurrency` and `priority` (flow control, `server.domain.flow`)."""
    try:
        return {
            "concurrency": parse_concurrency(data.get("concurrency"), strategies=True),
            "priority": parse_priority(data.get("priority")),
        }
    except FlowSpecError as exc:
        raise where.error(str(exc)) from exc


def _step_flow(raw: dict[str, Any], where: "_Where") -> dict[str, Any]:
    """A step's `concurrency` and `rate_limit`."""
    try:
        return {
            "concurrency": parse_concurrency(raw.get("concurrency"), strategies=False),
            "rate_limit": parse_rate_limit(raw.get("rate_limit")),
        }
    except FlowSpecError as exc:
        raise where.error(str(exc)) from exc


def _builtin_kind(
    raw: dict[str, Any], where: "_Where", handler_class: str | None
) -> tuple[SleepSpec | None, WaitSpec | None, str | None]:
    """A built-in `sleep` / `wait_for` step's spec and stored class (None, None, None if not)."""
    kinds = [k for k in KINDS if k in raw]
    if not kinds:
        return None, None, None
    if len(kinds) > 1:
        raise where.error("a step is either a sleep or a wait_for, not both")
    if handler_class is not None:
        raise where.error(f"a '{kinds[0]}' step is built in: it takes no handler_class")
    if kinds[0] == SLEEP:
        sleep, problems = parse_sleep(raw[SLEEP])
        wait: WaitSpec | None = None
    else:
        wait, problems = parse_wait(raw[WAIT_FOR])
        sleep = None
    if problems:
        raise where.error("; ".join(problems))
    return sleep, wait, builtin_class(kinds[0])


def _check_condition(step: StepTemplate, graph: StepGraph, where: "_Where") -> None:
    """A `run_if` must parse and read only the step's ancestors (and the context)."""
    if step.run_if is None:
        return
    ancestors: set[str] = set()
    todo = list(graph.parents(step.name))
    while todo:
        name = todo.pop()
        if name not in ancestors:
            ancestors.add(name)
            todo.extend(graph.parents(name))
    try:
        check_parents(compile_condition(step.run_if), ancestors)
    except ConditionInvalid as exc:
        raise where.error(str(exc)) from exc


def _custom_events(raw: dict[str, Any], where: "_Where") -> tuple[str, ...]:
    events = raw.get("custom_events") or []
    if not isinstance(events, list):
        raise where.error("'custom_events' must be a list")
    names: list[str] = []
    for event in events:
        name = event.get("name") if isinstance(event, dict) else event
        if not isinstance(name, str) or not name:
            raise where.error("each custom event must be a name or a mapping with a 'name'")
        names.append(name)
    return tuple(names)


def _context_schema(data: dict[str, Any], where: "_Where") -> dict[str, Any] | None:
    schema = data.get("schema")
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise where.error("'schema' must be a JSON Schema object")
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        raise where.error(f"'schema' is not a valid JSON Schema: {exc.message}") from exc
    return schema


def _debounce(data: dict[str, Any], where: "_Where") -> tuple[str, float] | None:
    """`debounce: {key: context.document_id, seconds: 30}`, checked at load."""
    if data.get("debounce") is None:
        return None
    block = where.mapping(data, "debounce")
    key = where.text(block, "key")
    seconds = where.seconds(block, "seconds")
    if not key or seconds is None:
        raise where.error("'debounce' needs a 'key' (e.g. context.document_id) and 'seconds'")
    if seconds > MAX_DELAY_SECONDS:
        raise where.error(f"'debounce.seconds' must be at most {MAX_DELAY_SECONDS}")
    return key, seconds


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a field is read from; builds the errors and type-checks scalar fields."""

    source: str
    step: str | None = None

    def error(self, problem: str) -> TemplateInvalid:
        prefix = self.source if self.step is None else f"{self.source}: step '{self.step}'"
        details = {"file": self.source} | ({} if self.step is None else {"step": self.step})
        return TemplateInvalid(f"{prefix}: {problem}", details)

    def text(self, data: Mapping[str, Any], key: str) -> str | None:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            if key == "version" and isinstance(value, int | float):
                # YAML reads `version: 1.0` as a number.
                raise self.error(
                    f"'version' must be a string: YAML read {value!r} as a number; "
                    'quote it, e.g. version: "1.0.0"'
                )
            raise self.error(f"'{key}' must be a string")
        return value

    def required_text(self, data: Mapping[str, Any], key: str) -> str:
        value = self.text(data, key)
        if not value:
            raise self.error(f"missing required field '{key}'")
        return value

    def flag(self, data: Mapping[str, Any], key: str, *, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"'{key}' must be true or false")
        return value

    def count(self, data: Mapping[str, Any], key: str, *, default: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(f"'{key}' must be a non-negative integer")
        return value

    def seconds(self, data: Mapping[str, Any], key: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.error(f"'{key}' must be a positive number of seconds")
        return float(value)

    def names(self, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(f"'{key}' must be a list of names")
        return tuple(value)

    def mapping(self, data: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            raise self.error(f"'{key}' must be a mapping")
        return value
