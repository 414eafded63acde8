"""Parsing one handler definition file: defaults, merging, and every rejection."""

import textwrap
from pathlib import Path

import pytest

from server.domain.errors import TemplateInvalid
from server.domain.versions import is_semver, semver_key
from server.registry.definitions import (
    HTTP_HANDLER_CLASS,
    import_handler_class,
    load_definition,
    read_definition,
)
from tests.support.steps import Work

WORK = "tests.support.steps:Work"


def write(tmp_path: Path, body: str, name: str = "handler.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def definition(steps: str, header: str = "") -> str:
    """A definition with the usual header and the given (dedented) step list."""
    head = "name: demo\nnamespace_name: shapes\nversion: 1.0.0\n" + textwrap.dedent(header)
    return head + "step_templates:\n" + textwrap.indent(textwrap.dedent(steps), "  ")


def test_a_minimal_step_gets_tasker_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, definition(f"- {{name: only, handler_class: '{WORK}'}}"))

    template = load_definition(path)

    assert (template.namespace, template.name, template.version) == ("shapes", "demo", "1.0.0")
    assert template.source == str(path)
    step = template.step("only")
    assert (step.retryable, step.retry_limit, step.skippable) == (True, 3, False)
    assert (step.depends_on, step.depends_on_step, step.custom_events) == ((), None, ())
    assert step.timeout_seconds is None
    assert template.graph.execution_order == ("only",)


def test_depends_on_joins_the_single_and_list_forms_in_order_without_duplicates(
    tmp_path: Path,
) -> None:
    steps = f"""\
    - {{name: a, handler_class: '{WORK}'}}
    - {{name: b, handler_class: '{WORK}'}}
    - {{name: c, handler_class: '{WORK}', depends_on_step: b, depends_on_steps: [a, b]}}
    """
    template = load_definition(write(tmp_path, definition(steps)))

    step = template.step("c")
    assert step.depends_on == ("b", "a")
    assert step.depends_on_step == "b"
    assert template.graph.edges == (("b", "c"), ("a", "c"))


def test_step_fields_are_read_and_events_normalised_to_names(tmp_path: Path) -> None:
    steps = f"""\
    - name: charge
      description: Charge it
      handler_class: {WORK}
      default_retryable: false
      default_retry_limit: 0
      skippable: true
      timeout_seconds: 2.5
      handler_config: {{gateway: sandbox}}
      custom_events: [plain.event, {{name: mapped.event}}]
    - {{name: other, handler_class: '{WORK}', dependent_system: mail}}
    """
    header = "default_dependent_system: gateway\nnamed_steps: [charge, other]\n"
    template = load_definition(write(tmp_path, definition(steps, header)))

    charge = template.step("charge")
    assert charge.description == "Charge it"
    assert (charge.retryable, charge.retry_limit, charge.skippable) == (False, 0, True)
    assert charge.timeout_seconds == 2.5
    assert charge.handler_config == {"gateway": "sandbox"}
    assert charge.custom_events == ("plain.event", "mapped.event")
    assert charge.dependent_system == "gateway"
    assert template.step("other").dependent_system == "mail"
    assert template.named_steps == ("charge", "other")


def test_an_http_step_without_a_class_gets_the_builtin_http_handler(tmp_path: Path) -> None:
    steps = "- {name: call, handler_config: {type: http, url: 'http://localhost/x'}}"
    template = load_definition(write(tmp_path, definition(steps)))

    assert template.step("call").handler_class == HTTP_HANDLER_CLASS


def test_the_current_environments_overrides_are_merged_by_step_name(tmp_path: Path) -> None:
    steps = f"""\
    - name: charge
      handler_class: {WORK}
      handler_config: {{gateway: sandbox, region: eu}}
    """
    header = f"""\
    environments:
      production:
        step_templates:
          - {{name: charge, default_retry_limit: 7, handler_config: {{gateway: live}}}}
      test:
        step_templates:
          - {{name: charge, handler_class: '{WORK}'}}
    """
    path = write(tmp_path, definition(steps, header))

    production = load_definition(path, environment="production").step("charge")
    development = load_definition(path).step("charge")

    assert production.handler_config == {"gateway": "live", "region": "eu"}
    assert production.retry_limit == 7
    assert development.handler_config == {"gateway": "sandbox", "region": "eu"}
    assert development.retry_limit == 3


def test_an_override_for_an_unknown_step_is_rejected_in_every_environment(
    tmp_path: Path,
) -> None:
    header = "environments:\n  production:\n    step_templates: [{name: chrage}]\n"
    path = write(tmp_path, definition(f"- {{name: charge, handler_class: '{WORK}'}}", header))

    with pytest.raises(TemplateInvalid, match=r"handler\.yaml: step 'chrage': .*production"):
        load_definition(path, environment="development")


def test_the_namespace_description_and_schema_are_read(tmp_path: Path) -> None:
    header = """\
    namespace_description: Shapes for tests
    schema:
      type: object
      required: [n]
    """
    path = write(tmp_path, definition(f"- {{name: a, handler_class: '{WORK}'}}", header))

    parsed = read_definition(path)

    assert parsed.namespace_description == "Shapes for tests"
    assert parsed.template.context_schema == {"type": "object", "required": ["n"]}


@pytest.mark.parametrize(
    ("steps", "step", "problem"),
    [
        pytest.param(
            f"""\
            - {{name: a, handler_class: '{WORK}', depends_on_step: c}}
            - {{name: b, handler_class: '{WORK}', depends_on_step: a}}
            - {{name: c, handler_class: '{WORK}', depends_on_step: b}}
            """,
            "a",
            "cycle",
            id="cycle",
        ),
        pytest.param(
            f"- {{name: a, handler_class: '{WORK}', depends_on_steps: [ghost]}}",
            "a",
            "unknown step 'ghost'",
            id="unknown-dependency",
        ),
        pytest.param(
            f"- {{name: a, handler_class: '{WORK}', depends_on_step: a}}",
            "a",
            "itself",
            id="self-dependency",
        ),
        pytest.param(
            f"- {{name: a, handler_class: '{WORK}'}}\n- {{name: a, handler_class: '{WORK}'}}",
            "a",
            "duplicate step name",
            id="duplicate-step",
        ),
        pytest.param(
            "- {name: a, handler_class: 'no_such_package.steps:Charge'}",
            "a",
            "no_such_package",
            id="unimportable-module",
        ),
        pytest.param(
            "- {name: a, handler_class: 'tests.support.steps:Missing'}",
            "a",
            "no attribute 'Missing'",
            id="missing-class",
        ),
        pytest.param(
            "- {name: a, handler_class: 'pathlib.Path'}",
            "a",
            "not a subclass of server.handlers.StepHandler",
            id="not-a-step-handler",
        ),
        pytest.param(
            "- {name: a, handler_class: 'Charge'}",
            "a",
            "package.module:ClassName",
            id="malformed-class-name",
        ),
        pytest.param("- {name: a}", "a", "missing required field 'handler_class'", id="no-class"),
        pytest.param(
            f"- {{name: a, handler_class: '{WORK}', depends_on: [b]}}",
            "a",
            "unknown field 'depends_on' (did you mean 'depends_on_step'?)",
            id="unknown-field",
        ),
        pytest.param(
            f"- {{name: a, handler_class: '{WORK}', default_retry_limit: -1}}",
            "a",
            "non-negative integer",
            id="negative-retry-limit",
        ),
        pytest.param(
            f"- {{name: a, handler_class: '{WORK}', custom_events: [{{label: x}}]}}",
            "a",
            "custom event",
            id="nameless-event",
        ),
        pytest.param(f"- {{handler_class: '{WORK}'}}", "#1", "'name'", id="nameless-step"),
    ],
)
def test_a_bad_step_is_rejected_naming_the_file_and_the_step(
    tmp_path: Path, steps: str, step: str, problem: str
) -> None:
    path = write(tmp_path, definition(steps), name="broken_workflow.yaml")

    with pytest.raises(TemplateInvalid) as caught:
        load_definition(path)

    message = caught.value.message
    assert "broken_workflow.yaml" in message
    assert f"step '{step}'" in message
    assert problem in message
    assert caught.value.details == {"file": str(path), "step": step}


@pytest.mark.parametrize("field", ["name", "namespace_name", "version"])
def test_a_missing_top_level_field_is_rejected_naming_the_file(tmp_path: Path, field: str) -> None:
    lines = definition(f"- {{name: a, handler_class: '{WORK}'}}").splitlines()
    body = "\n".join(line for line in lines if not line.startswith(f"{field}:"))

    with pytest.raises(TemplateInvalid, match=rf"handler\.yaml: missing required field '{field}'"):
        load_definition(write(tmp_path, body))


@pytest.mark.parametrize(
    "body",
    [
        "name: demo\nnamespace_name: shapes\nversion: 1.0.0\n",
        "name: demo\nnamespace_name: shapes\nversion: 1.0.0\nstep_templates: []\n",
        "- just\n- a list\n",
        "name: [unclosed\n",
    ],
    ids=["no-steps", "empty-steps", "not-a-mapping", "bad-yaml"],
)
def test_a_malformed_file_is_rejected_naming_the_file(tmp_path: Path, body: str) -> None:
    with pytest.raises(TemplateInvalid, match=r"handler\.yaml"):
        load_definition(write(tmp_path, body))


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.2.3", "1.2.3.4", "latest", "1.0.0-"])
def test_an_invalid_semantic_version_is_rejected(tmp_path: Path, version: str) -> None:
    body = definition(f"- {{name: a, handler_class: '{WORK}'}}").replace(
        "version: 1.0.0", f"version: '{version}'"
    )

    with pytest.raises(TemplateInvalid, match="not a valid semantic version"):
        load_definition(write(tmp_path, body))


def test_a_version_that_yaml_reads_as_a_number_is_rejected(tmp_path: Path) -> None:
    body = definition(f"- {{name: a, handler_class: '{WORK}'}}").replace("1.0.0", "1.0")

    with pytest.raises(TemplateInvalid, match="'version' must be a string"):
        load_definition(write(tmp_path, body))


def test_an_invalid_context_schema_is_rejected(tmp_path: Path) -> None:
    header = "schema: {type: object, properties: {amount: {type: 12}}}\n"
    path = write(tmp_path, definition(f"- {{name: a, handler_class: '{WORK}'}}", header))

    with pytest.raises(
        TemplateInvalid, match=r"handler\.yaml: 'schema' is not a valid JSON Schema"
    ):
        load_definition(path)


def test_a_step_missing_from_named_steps_is_rejected(tmp_path: Path) -> None:
    header = "named_steps: [a]\n"
    steps = f"- {{name: a, handler_class: '{WORK}'}}\n- {{name: b, handler_class: '{WORK}'}}"

    with pytest.raises(TemplateInvalid, match="step 'b': not listed in named_steps"):
        load_definition(write(tmp_path, definition(steps, header)))


def test_semver_validity() -> None:
    assert all(map(is_semver, ["0.0.1", "1.10.0", "1.0.0-rc.1", "1.0.0+build.7", "2.0.0-x-y"]))
    assert not any(map(is_semver, ["1", "1.0", "1.0.0.0", "01.0.0", "1.0.0-01", " 1.0.0"]))


def test_semver_key_orders_by_precedence_not_lexically() -> None:
    expected = [
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
        "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.9.0", "1.10.0", "2.0.0",
    ]  # fmt: skip

    lexical = sorted(expected)

    assert lexical != expected
    assert sorted(lexical, key=semver_key) == expected
    with pytest.raises(ValueError, match="semantic version"):
        semver_key("1.0")


@pytest.mark.parametrize("spec", ["tests.support.steps:Work", "tests.support.steps.Work"])
def test_handler_classes_import_in_both_spellings(spec: str) -> None:
    assert import_handler_class(spec) is Work
