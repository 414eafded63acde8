"""The handler registry: every loaded `HandlerTemplate`, looked up by namespace, name and version.

Loading reads the bundled examples first (when enabled), then each directory in turn. Within a
directory, its `namespaces.yaml`/`namespaces.yml` files are read first, then every other
`*.yaml`/`*.yml` file recursively, in sorted path order; hidden files and directories are
skipped. A namespaces file has this one shape::

    namespaces:
      payments: Payment processing workflows
      inventory: Inventory management workflows

A handler file's `namespace_description` describes its namespace when nothing read earlier did;
the first description read wins. Namespaces are listed in the order their descriptions were
read, then any undescribed namespace in the order its first handler was read; handler names in
the order their first file was read (prefix file names, `01_charge.yaml`, to choose it). Two
files defining the same namespace, name and version are rejected.

After loading everything is in memory, synchronous and read-only, except the cache of
step-handler instances.
"""

import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError
from jsonschema.validators import Draft202012Validator, validator_for

import server.examples
from server.domain.errors import (
    HandlerNotFound,
    NamespaceNotFound,
    TemplateInvalid,
    ValidationFailed,
)
from server.domain.templates import HandlerTemplate, NamespaceInfo
from server.domain.versions import is_semver, semver_key
from server.handlers.base import StepHandler
from server.registry.definitions import import_handler_class, read_definition, read_yaml
from server.registry.dynamic_steps import child_cycles

EXAMPLES_DIR = Path(server.examples.__file__).resolve().parent
"""The bundled catalogue that `--examples` adds."""

NAMESPACES_FILES = frozenset({"namespaces.yaml", "namespaces.yml"})


class HandlerRegistry:
    """Read-only lookup over loaded templates, plus a cache of step-handler instances."""

    def __init__(
        self, templates: Iterable[HandlerTemplate], descriptions: Mapping[str, str]
    ) -> None:
        """Index `templates` (in listing order); TemplateInvalid on a duplicate version."""
        self._descriptions = dict(descriptions)
        self._index: dict[str, dict[str, dict[str, HandlerTemplate]]] = {
            namespace: {} for namespace in descriptions
        }
        for template in templates:
            versions = self._index.setdefault(template.namespace, {}).setdefault(template.name, {})
            if (earlier := versions.get(template.version)) is not None:
                raise TemplateInvalid(
                    f"{template.full_name} is defined twice: in {earlier.source} "
                    f"and in {template.source}",
                    {"file": template.source, "other_file": earlier.source},
                )
            versions[template.version] = template
        loaded = [t for names in self._index.values() for vs in names.values() for t in vs.values()]
        if cycles := child_cycles(loaded):
            members = set(cycles[0].split(" -> "))
            where = {t.source for t in loaded if t.source and f"{t.namespace}.{t.name}" in members}
            raise TemplateInvalid(
                f"handlers start each other through task: steps, in a cycle: {cycles[0]}",
                {"file": ", ".join(sorted(where)), "cycle": cycles[0]},
            )
        # Descriptions may name namespaces that have no handler; those are not listed.
        self._index = {ns: names for ns, names in self._index.items() if names}
        self._handlers: dict[str, StepHandler] = {}
        self._handlers_lock = threading.Lock()
        # One validator per context schema, made when first used: building one (its
        # reference resolver, its keyword table) cost more than validating a small context.
        self._validators: dict[int, tuple[HandlerTemplate, Any]] = {}

    @classmethod
    def load(
        cls, dirs: Iterable[Path], *, examples: bool, environment: str = "development"
    ) -> "HandlerRegistry":
        """Load every definition under `dirs` (and the examples first, when asked)."""
        roots = [EXAMPLES_DIR, *dirs] if examples else list(dirs)
        templates: list[HandlerTemplate] = []
        descriptions: dict[str, str] = {}
        for root in roots:
            if not root.is_dir():
                raise TemplateInvalid(f"{root}: not a directory", {"file": str(root)})
            for path in _definition_files(root):
                _read_into(path, environment, templates, descriptions)
        return cls(templates, descriptions)

    @classmethod
    def from_templates(
        cls, templates: Iterable[HandlerTemplate], descriptions: Mapping[str, str] | None = None
    ) -> "HandlerRegistry":
        """A registry over ready-made templates (tests and embedding)."""
        return cls(templates, descriptions or {})

    def namespaces(self) -> list[NamespaceInfo]:
        """Every namespace with handlers, in listing order."""
        return [self.namespace(name) for name in self._index]

    def namespace(self, name: str) -> NamespaceInfo:
        """One namespace (NamespaceNotFound when it has no handlers)."""
        return NamespaceInfo(name, self._descriptions.get(name), tuple(self._names(name)))

    def handlers(self, namespace: str) -> list[HandlerTemplate]:
        """The latest version of each handler in `namespace`, in listing order."""
        return [self._latest(versions) for versions in self._names(namespace).values()]

    def versions(self, namespace: str, name: str) -> list[str]:
        """The versions of one handler, newest first by semver."""
        return sorted(self._versions(namespace, name), key=semver_key, reverse=True)

    def get(self, namespace: str, name: str, version: str | None = None) -> HandlerTemplate:
        """One template; `version=None` means the highest version by semver."""
        if version is not None and not is_semver(version):
            raise ValidationFailed(
                "Invalid version", {"version": ["must be a valid semantic version"]}
            )
        versions = self._versions(namespace, name, version)
        if version is None:
            return self._latest(versions)
        try:
            return versions[version]
        except KeyError:
            raise HandlerNotFound(namespace, name, version) from None

    def all(self) -> list[HandlerTemplate]:
        """Every loaded template, every version, in listing order."""
        return [t for names in self._index.values() for vs in names.values() for t in vs.values()]

    def step_handler(self, handler_class: str) -> StepHandler:
        """The shared instance of `handler_class`, imported and built on first use."""
        handler = self._handlers.get(handler_class)
        if handler is None:
            with self._handlers_lock:
                handler = self._handlers.get(handler_class)
                if handler is None:
                    try:
                        handler = import_handler_class(handler_class)()
                    except (ValueError, TypeError) as exc:
                        raise TemplateInvalid(str(exc)) from exc
                    self._handlers[handler_class] = handler
        return handler

    def validate_context(self, template: HandlerTemplate, context: Any) -> None:
        """Check `context` against the template's schema, reporting every error by field."""
        schema = template.context_schema
        if schema is None:
            return
        known = self._validators.get(id(template))
        if known is None or known[0] is not template:
            known = (template, validator_for(schema, default=Draft202012Validator)(schema))
            self._validators[id(template)] = known
        validator = known[1]
        details: dict[str, list[str]] = {}
        seen_required: set[tuple[Any, ...]] = set()
        for error in validator.iter_errors(context):
            for field, message in _describe(error, seen_required):
                details.setdefault(field, []).append(message)
        if details:
            raise ValidationFailed("Invalid task context", details)

    def _names(self, namespace: str) -> dict[str, dict[str, HandlerTemplate]]:
        try:
            return self._index[namespace]
        except KeyError:
            raise NamespaceNotFound(namespace) from None

    def _versions(
        self, namespace: str, name: str, version: str | None = None
    ) -> dict[str, HandlerTemplate]:
        # `version` only words the error like the seed's ("... version '1.0.0'").
        try:
            return self._names(namespace)[name]
        except KeyError:
            raise HandlerNotFound(namespace, name, version) from None

    @staticmethod
    def _latest(versions: Mapping[str, HandlerTemplate]) -> HandlerTemplate:
        return versions[max(versions, key=semver_key)]


def validate_path(path: Path, *, environment: str = "development") -> list[str]:
    """Every problem in a definition file or directory (an empty list means it is valid)."""
    if not path.exists():
        return [f"{path}: no such file or directory"]
    files = list(_definition_files(path)) if path.is_dir() else [path]
    if not files:
        return [f"{path}: no handler definitions found"]
    errors: list[str] = []
    templates: list[HandlerTemplate] = []
    descriptions: dict[str, str] = {}
    for file in files:
        try:
            _read_into(file, environment, templates, descriptions)
        except TemplateInvalid as exc:
            errors.append(exc.message)
    try:
        HandlerRegistry(templates, descriptions)
    except TemplateInvalid as exc:
        errors.append(exc.message)
    return errors


def count_path(path: Path, *, environment: str = "development") -> tuple[int, int]:
    """(handlers, steps) defined under a path that `validate_path` found valid."""
    files = list(_definition_files(path)) if path.is_dir() else [path]
    templates: list[HandlerTemplate] = []
    for file in files:
        _read_into(file, environment, templates, {})
    return len(templates), sum(len(t.steps) for t in templates)


def _definition_files(root: Path) -> Iterator[Path]:
    """YAML files under `root`: namespaces files first, then sorted by path; hidden ones skipped."""
    for path in sorted(root.rglob("*"), key=lambda p: (p.name not in NAMESPACES_FILES, p)):
        hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
        if path.suffix in {".yaml", ".yml"} and path.is_file() and not hidden:
            yield path


def _read_into(
    path: Path, environment: str, templates: list[HandlerTemplate], descriptions: dict[str, str]
) -> None:
    """Read one file, adding its template or namespace descriptions (first description wins)."""
    if path.name in NAMESPACES_FILES:
        for namespace, description in _read_namespaces(path).items():
            descriptions.setdefault(namespace, description)
        return
    definition = read_definition(path, environment=environment)
    templates.append(definition.template)
    if definition.namespace_description:
        descriptions.setdefault(definition.template.namespace, definition.namespace_description)


def _read_namespaces(path: Path) -> dict[str, str]:
    data = read_yaml(path)
    namespaces = data.get("namespaces") if isinstance(data, dict) else None
    if not isinstance(namespaces, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in namespaces.items()
    ):
        raise TemplateInvalid(
            f"{path}: expected 'namespaces:' mapping each namespace name to its description",
            {"file": str(path)},
        )
    return namespaces


def _describe(error: ValidationError, seen_required: set[tuple[Any, ...]]) -> list[tuple[str, str]]:
    """The field paths (`context.items[0].sku`) and readable messages for one schema error."""
    field = "context" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    )
    if error.validator != "required" or not isinstance(error.instance, dict):
        return [(field, error.message)]
    # jsonschema reports each missing property on the parent object without naming it in a
    # field, so answer the whole `required` keyword once, pointing at each missing property.
    key = (tuple(error.absolute_path), tuple(error.absolute_schema_path))
    if key in seen_required:
        return []
    seen_required.add(key)
    required = error.validator_value if isinstance(error.validator_value, list) else []
    missing = [p for p in required if p not in error.instance]
    return [(f"{field}.{name}", "is required") for name in missing]
