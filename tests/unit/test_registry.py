"""The handler registry: loading directories, ordering, version lookup, context validation."""

import textwrap
from pathlib import Path
from typing import Any

import pytest

from server.domain.errors import (
    HandlerNotFound,
    NamespaceNotFound,
    TemplateInvalid,
    ValidationFailed,
)
from server.registry.definitions import load_definition
from server.registry.handler_registry import HandlerRegistry, validate_path
from tests.support.steps import Work

WORK = "tests.support.steps:Work"


def handler(
    directory: Path,
    name: str,
    namespace: str = "shapes",
    version: str = "1.0.0",
    extra: str = "",
    file: str | None = None,
) -> Path:
    """Write a one-step handler definition and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (file or f"{name}-{version}.yaml")
    body = f"""\
    name: {name}
    namespace_name: {namespace}
    version: '{version}'
    description: {name} {version}
    step_templates:
      - {{name: only, handler_class: '{WORK}'}}
    """
    path.write_text(textwrap.dedent(body) + textwrap.dedent(extra), encoding="utf-8")
    return path


def namespaces_file(directory: Path, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "namespaces.yaml").write_text(textwrap.dedent(body), encoding="utf-8")


def listing(registry: HandlerRegistry) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [(ns.name, ns.description, ns.handler_names) for ns in registry.namespaces()]


def test_namespaces_follow_the_namespaces_file_then_first_load(tmp_path: Path) -> None:
    namespaces_file(tmp_path, "namespaces:\n  zeta: Described first\n  alpha: Described second\n")
    handler(tmp_path / "a", "one", namespace="alpha", file="01.yaml")
    handler(tmp_path / "b", "free", namespace="beta", file="01.yaml")
    handler(tmp_path / "z", "late", namespace="zeta", file="02.yaml")
    handler(tmp_path / "z", "early", namespace="zeta", file="01.yaml")

    registry = HandlerRegistry.load([tmp_path], examples=False)

    assert listing(registry) == [
        ("zeta", "Described first", ("early", "late")),
        ("alpha", "Described second", ("one",)),
        ("beta", None, ("free",)),
    ]


def test_a_handler_files_namespace_description_is_used_when_none_is_declared(
    tmp_path: Path,
) -> None:
    handler(tmp_path, "a", extra="namespace_description: From the handler\n")

    registry = HandlerRegistry.load([tmp_path], examples=False)

    assert registry.namespace("shapes").description == "From the handler"


def test_a_namespace_without_handlers_is_not_listed(tmp_path: Path) -> None:
    namespaces_file(tmp_path, "namespaces:\n  empty: Nothing here\n")
    handler(tmp_path, "a")

    registry = HandlerRegistry.load([tmp_path], examples=False)

    assert [ns.name for ns in registry.namespaces()] == ["shapes"]
    with pytest.raises(NamespaceNotFound):
        registry.namespace("empty")


def test_a_malformed_namespaces_file_is_rejected(tmp_path: Path) -> None:
    namespaces_file(tmp_path, "payments: Payment processing workflows\n")

    with pytest.raises(TemplateInvalid, match=r"namespaces\.yaml: expected 'namespaces:'"):
        HandlerRegistry.load([tmp_path], examples=False)


def test_the_latest_version_is_the_highest_by_semver(tmp_path: Path) -> None:
    for version in ["1.9.0", "1.10.0", "1.2.0", "1.10.0-rc.1"]:
        handler(tmp_path, "mail", version=version)

    registry = HandlerRegistry.load([tmp_path], examples=False)

    assert registry.get("shapes", "mail").version == "1.10.0"
    assert registry.versions("shapes", "mail") == ["1.10.0", "1.10.0-rc.1", "1.9.0", "1.2.0"]
    assert [t.version for t in registry.handlers("shapes")] == ["1.10.0"]
    assert registry.namespace("shapes").handler_names == ("mail",)
    assert registry.get("shapes", "mail", "1.9.0").description == "mail 1.9.0"
    assert len(registry.all()) == 4


@pytest.mark.parametrize("version", ["1.0", "latest", "v1.0.0", ""])
def test_asking_for_an_invalid_version_is_a_validation_error(version: str) -> None:
    registry = HandlerRegistry.from_templates([])

    with pytest.raises(ValidationFailed) as caught:
        registry.get("shapes", "a", version)

    assert caught.value.message == "Invalid version"
    assert caught.value.details == {"version": ["must be a valid semantic version"]}


def test_unknown_namespace_name_and_version_are_not_found(tmp_path: Path) -> None:
    registry = HandlerRegistry.load([handler(tmp_path, "a").parent], examples=False)

    with pytest.raises(NamespaceNotFound):
        registry.get("nowhere", "a")
    with pytest.raises(NamespaceNotFound):
        registry.handlers("nowhere")
    with pytest.raises(HandlerNotFound):
        registry.get("shapes", "b")
    with pytest.raises(HandlerNotFound):
        registry.versions("shapes", "b")
    with pytest.raises(HandlerNotFound, match=r"version '2\.0\.0'"):
        registry.get("shapes", "a", "2.0.0")


def test_the_same_version_in_two_files_is_rejected_naming_both(tmp_path: Path) -> None:
    first = handler(tmp_path / "one", "a", file="first.yaml")
    second = handler(tmp_path / "two", "a", file="second.yaml")

    with pytest.raises(TemplateInvalid) as caught:
        HandlerRegistry.load([tmp_path], examples=False)

    assert str(first) in caught.value.message
    assert str(second) in caught.value.message


def test_hidden_files_and_non_yaml_files_are_skipped(tmp_path: Path) -> None:
    handler(tmp_path, "a")
    handler(tmp_path / ".drafts", "b")
    (tmp_path / "notes.txt").write_text("name: c\n", encoding="utf-8")
    handler(tmp_path, "d", file="d.yml")

    registry = HandlerRegistry.load([tmp_path], examples=False)

    assert registry.namespace("shapes").handler_names == ("a", "d")


def test_a_missing_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TemplateInvalid, match="not a directory"):
        HandlerRegistry.load([tmp_path / "missing"], examples=False)


def test_the_examples_come_before_the_configured_directories(tmp_path: Path) -> None:
    handler(tmp_path, "a")

    registry = HandlerRegistry.load([tmp_path], examples=True)

    names = [ns.name for ns in registry.namespaces()]
    assert names == ["payments", "inventory", "notifications", "shapes"]


def test_from_templates_indexes_ready_made_templates(tmp_path: Path) -> None:
    template = load_definition(handler(tmp_path, "a"))

    registry = HandlerRegistry.from_templates([template], {"shapes": "Shapes"})

    assert listing(registry) == [("shapes", "Shapes", ("a",))]
    assert registry.get("shapes", "a") is template


def test_step_handlers_are_built_once_and_shared() -> None:
    registry = HandlerRegistry.from_templates([])

    first = registry.step_handler(WORK)

    assert isinstance(first, Work)
    assert registry.step_handler(WORK) is first
    with pytest.raises(TemplateInvalid, match="no_such_module"):
        registry.step_handler("no_such_module:Handler")


SCHEMA = """\
schema:
  type: object
  required: [payment_id, currency]
  properties:
    payment_id: {type: integer}
    amount: {type: number, exclusiveMinimum: 0}
    currency: {type: string}
    items:
      type: array
      items: {type: object, required: [sku], properties: {quantity: {minimum: 1}}}
"""


@pytest.fixture
def schema_registry(tmp_path: Path) -> HandlerRegistry:
    handler(tmp_path, "pay", extra=SCHEMA)
    return HandlerRegistry.load([tmp_path], examples=False)


def context_errors(registry: HandlerRegistry, context: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        registry.validate_context(registry.get("shapes", "pay"), context)
    assert caught.value.message == "Invalid task context"
    assert caught.value.details is not None
    return caught.value.details


def test_a_valid_context_passes(schema_registry: HandlerRegistry) -> None:
    context = {"payment_id": 1, "amount": 9.5, "currency": "USD", "items": [{"sku": "x"}]}

    schema_registry.validate_context(schema_registry.get("shapes", "pay"), context)


def test_every_context_error_is_reported_by_field(schema_registry: HandlerRegistry) -> None:
    context = {"amount": -1, "items": [{"sku": "a"}, {"quantity": 0}]}

    details = context_errors(schema_registry, context)

    assert details == {
        "context.payment_id": ["is required"],
        "context.currency": ["is required"],
        "context.amount": ["-1 is less than or equal to the minimum of 0"],
        "context.items[1].sku": ["is required"],
        "context.items[1].quantity": ["0 is less than the minimum of 1"],
    }


def test_a_context_of_the_wrong_type_is_reported_at_the_root(
    schema_registry: HandlerRegistry,
) -> None:
    assert context_errors(schema_registry, [1, 2]) == {
        "context": ["[1, 2] is not of type 'object'"]
    }


def test_a_template_without_schema_accepts_any_context(tmp_path: Path) -> None:
    registry = HandlerRegistry.load([handler(tmp_path, "a").parent], examples=False)

    registry.validate_context(registry.get("shapes", "a"), "anything")


def test_the_schemas_own_draft_is_honoured(tmp_path: Path) -> None:
    # Draft 4's boolean exclusiveMinimum is invalid in 2020-12, so this only loads as draft 4.
    draft4 = """\
    schema:
      $schema: 'http://json-schema.org/draft-04/schema#'
      properties: {n: {minimum: 0, exclusiveMinimum: true}}
    """
    handler(tmp_path, "pay", extra=draft4)
    registry = HandlerRegistry.load([tmp_path], examples=False)

    assert list(context_errors(registry, {"n": 0})) == ["context.n"]


def test_validate_path_accepts_a_valid_directory_and_file(tmp_path: Path) -> None:
    path = handler(tmp_path, "a")
    namespaces_file(tmp_path, "namespaces:\n  shapes: Shapes\n")

    assert validate_path(tmp_path) == []
    assert validate_path(path) == []


def test_validate_path_reports_every_bad_file(tmp_path: Path) -> None:
    handler(tmp_path, "good")
    handler(tmp_path, "cyclic", extra="named_steps: [other]\n")
    (tmp_path / "broken.yaml").write_text("name: [\n", encoding="utf-8")
    handler(tmp_path / "copy", "good")

    errors = validate_path(tmp_path)

    assert len(errors) == 3
    assert any("broken.yaml" in e for e in errors)
    assert any("cyclic-1.0.0.yaml: step 'only'" in e for e in errors)
    assert any("defined twice" in e for e in errors)


def test_validate_path_reports_a_missing_or_empty_path(tmp_path: Path) -> None:
    assert validate_path(tmp_path / "nope") == [f"{tmp_path / 'nope'}: no such file or directory"]
    assert validate_path(tmp_path) == [f"{tmp_path}: no handler definitions found"]
