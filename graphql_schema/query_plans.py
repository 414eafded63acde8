"""Known queries compiled once into a tree of field plans (run by `graphql_schema.plan_runs`).

For every request, graphql-core's executor works the document out again: an execution
context, the fields of each object collected, and for every field a resolve info, a path and
a chain of completion calls through its type's wrappers. For a document that already passed
parsing, bounds, authorization and validation (`graphql_schema.known_documents`), all of that
but the values is the same each time. Here it is done once per document: the operation
becomes a tree of field plans, each a plain field's reader, or a resolver and how to complete
its value (a scalar, a list, an object with its own plan).

Only what plans cover is compiled: a document with a directive, introspection beyond
`__typename`, a type condition on an interface, or a field of an abstract type is not, and
runs through graphql-core.
"""

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.pyutils import Path
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.field import StrawberryField
from strawberry.types.info import Info

from graphql_schema.caches import TextCache
from graphql_schema.plain_fields import (
    SLOW,
    attribute_name,
    attribute_reader,
    leaf_completer,
    plain_reader,
    plain_rows,
)
from graphql_schema.plan_variables import ScalarVariables

log = logging.getLogger("tasker.graphql")


class Fallback(Exception):
    """The run met something only graphql-core's executor reports: run it the full way."""


class Uncompilable(Exception):
    """The document uses something plans do not cover."""


class Walk(Protocol):
    """What a completion needs of the run walking the plan (`graphql_schema.plan_runs.Run`)."""

    def object(self, plan: "ObjectPlan", source: Any, path: Path | None) -> Any: ...

    def items(self, complete: "Completion", values: Iterable[Any], path: Path) -> Any: ...


Completion = Callable[[Walk, Any, Path], Any]
"""Turns a resolver's value into its output, or an awaitable of it."""


@dataclass(frozen=True, slots=True)
class FieldPlan:
    key: str
    """The response key (the alias, else the field name)."""
    nodes: list[FieldNode]
    definition: GraphQLField | None
    """None for `__typename`."""
    read: Callable[[Any], Any] | None
    """A plain field's reader (it returns SLOW for anything graphql-core would report)."""
    complete: Completion | None
    """How a resolver's value is completed (None for a plain field)."""
    call: "DirectCall | None" = None
    """The field's own resolver, when strawberry's wrapper around it would only rename its
    arguments; None: the wrapper is called, as graphql-core calls it."""
    attribute: Callable[[Any], Any] | None = None
    """For a field of object type with no resolver (`Task.steps`' edges, an edge's `node`):
    reads its value (or SLOW), which `complete` completes, with no resolve info made."""


@dataclass(frozen=True, slots=True)
class ObjectPlan:
    type: GraphQLObjectType
    fields: tuple[FieldPlan, ...]

    @property
    def readers(self) -> tuple[tuple[str, Callable[[Any], Any]], ...] | None:
        """(response key, reader) of every field, when all of them are plain reads (a
        task's steps by name and state); None when any field resolves or is an object."""
        readers = tuple((f.key, f.read) for f in self.fields if f.read is not None)
        return readers if len(readers) == len(self.fields) else None


@dataclass(frozen=True, slots=True)
class OperationPlan:
    schema: GraphQLSchema
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    root: ObjectPlan
    variables: ScalarVariables | None
    """How its variables are coerced without graphql-core's walk; None: by graphql-core."""


class QueryPlans:
    """The plans of one schema's known queries, by document text and operation name."""

    def __init__(self, schema: GraphQLSchema, cache_size: int, cache_chars: int) -> None:
        self.schema = schema
        self.plans: TextCache[OperationPlan | bool] = TextCache(cache_size, cache_chars)
        """A plan, or False for a document that does not compile."""

    def plan(
        self, query: str, document: DocumentNode, operation: OperationDefinitionNode
    ) -> OperationPlan | None:
        name = operation.name.value if operation.name else None
        known = self.plans.get(query, name)
        if known is None:
            try:
                known = compile_query(self.schema, document, operation) or False
            except Exception:  # a bug here must not cost the request: graphql-core runs it
                log.exception("could not compile a known query; it runs through graphql-core")
                known = False
            self.plans.put(query, known, name)
        return known if isinstance(known, OperationPlan) else None


def compile_query(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> OperationPlan | None:
    """The query's plan, or None when it uses what plans do not cover."""
    root = schema.query_type
    if root is None or operation.directives:
        return None
    if any(v.directives for v in operation.variable_definitions or ()):
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    try:
        plan = _object_plan(schema, root, [operation.selection_set], fragments)
    except Uncompilable:
        return None
    variables = ScalarVariables.of(schema, operation.variable_definitions or ())
    return OperationPlan(schema, operation, fragments, plan, variables)


def _object_plan(
    schema: GraphQLSchema,
    object_type: GraphQLObjectType,
    selection_sets: Sequence[SelectionSetNode],
    fragments: Mapping[str, FragmentDefinitionNode],
) -> ObjectPlan:
    if object_type.is_type_of is not None:
        raise Uncompilable
    groups: dict[str, list[FieldNode]] = {}
    visited: set[str] = set()
    for selection_set in selection_sets:
        _collect(object_type, selection_set, fragments, groups, visited)
    fields = (
        _field_plan(schema, object_type, key, nodes, fragments) for key, nodes in groups.items()
    )
    return ObjectPlan(object_type, tuple(fields))


def _collect(
    object_type: GraphQLObjectType,
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    groups: dict[str, list[FieldNode]],
    visited: set[str],
) -> None:
    """Groups the fields of `selection_set` by response key, fragments included (each
    named fragment once, as graphql-core collects them)."""
    for node in selection_set.selections:
        if node.directives:
            raise Uncompilable
        if isinstance(node, FieldNode):
            key = node.alias.value if node.alias else node.name.value
            groups.setdefault(key, []).append(node)
            continue
        if isinstance(node, InlineFragmentNode):
            condition, inner = node.type_condition, node.selection_set
        elif isinstance(node, FragmentSpreadNode):
            name = node.name.value
            if name in visited:
                continue
            visited.add(name)
            fragment = fragments.get(name)
            if fragment is None or fragment.directives:
                raise Uncompilable
            condition, inner = fragment.type_condition, fragment.selection_set
        else:
            raise Uncompilable
        if condition is not None and condition.name.value != object_type.name:
            raise Uncompilable  # a condition on an interface: left to graphql-core
        _collect(object_type, inner, fragments, groups, visited)


def _field_plan(
    schema: GraphQLSchema,
    parent: GraphQLObjectType,
    key: str,
    nodes: list[FieldNode],
    fragments: Mapping[str, FragmentDefinitionNode],
) -> FieldPlan:
    name = nodes[0].name.value
    if name == "__typename":
        type_name = parent.name
        return FieldPlan(key, nodes, None, lambda _source: type_name, None)
    definition = parent.fields.get(name)
    if definition is None:  # introspection (`__schema`, `__type`)
        raise Uncompilable
    read = plain_reader(definition)
    if read is not None:
        return FieldPlan(key, nodes, definition, read, None)
    selections = [n.selection_set for n in nodes if n.selection_set is not None]
    complete = _completion(schema, definition.type, selections, fragments)
    attribute = attribute_name(definition)
    if attribute is not None:
        reader = attribute_reader(attribute)
        return FieldPlan(key, nodes, definition, None, complete, attribute=reader)
    return FieldPlan(key, nodes, definition, None, complete, DirectCall.of(schema, definition))


def _completion(
    schema: GraphQLSchema,
    output: GraphQLOutputType,
    selection_sets: Sequence[SelectionSetNode],
    fragments: Mapping[str, FragmentDefinitionNode],
) -> Completion:
    leaf = leaf_completer(output)  # a scalar, an enum or a list of them
    if leaf is not None:
        return _leaf(leaf)
    nullable = not isinstance(output, GraphQLNonNull)
    inner = output.of_type if isinstance(output, GraphQLNonNull) else output
    if isinstance(inner, GraphQLList):
        return _list_completion(schema, inner.of_type, selection_sets, fragments, nullable)
    if isinstance(inner, GraphQLObjectType):
        return _object(_object_plan(schema, inner, selection_sets, fragments), nullable)
    raise Uncompilable  # an interface or a union


def _leaf(coerce: Callable[[Any], Any]) -> Completion:
    def complete(run: Walk, value: Any, path: Path) -> Any:
        out = coerce(value)
        if out is SLOW:
            raise Fallback
        return out

    return complete


def _list(item: Completion, nullable: bool) -> Completion:
    def complete(run: Walk, value: Any, path: Path) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, Iterable) or isinstance(value, str | bytes | Mapping):
            raise Fallback
        return run.items(item, value, path)

    return complete


def _list_completion(
    schema: GraphQLSchema,
    item: GraphQLOutputType,
    selection_sets: Sequence[SelectionSetNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    nullable: bool,
) -> Completion:
    """A list's completion, its item's plan compiled once: a list of objects whose selection
    is all plain reads is made in one loop (no path, completion call or awaitable check per
    item); any other, item by item."""
    items_nullable = not isinstance(item, GraphQLNonNull)
    inner = item.of_type if isinstance(item, GraphQLNonNull) else item
    if not isinstance(inner, GraphQLObjectType):
        return _list(_completion(schema, item, selection_sets, fragments), nullable)
    plan = _object_plan(schema, inner, selection_sets, fragments)
    readers = plan.readers
    if readers is None:
        return _list(_object(plan, items_nullable), nullable)

    def complete(run: Walk, value: Any, path: Path) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, Iterable) or isinstance(value, str | bytes | Mapping):
            raise Fallback
        rows = plain_rows(readers, value, items_nullable)
        if rows is None:
            raise Fallback
        return rows

    return complete


def _object(plan: ObjectPlan, nullable: bool) -> Completion:
    def complete(run: Walk, value: Any, path: Path) -> Any:
        if value is None and nullable:
            return None
        if value is None or isinstance(value, Exception):
            raise Fallback
        return run.object(plan, value, path)

    return complete


@dataclass(frozen=True, slots=True)
class DirectCall:
    """A strawberry resolver called as strawberry's wrapper calls it, without the wrapper.

    Only for a resolver with no field extension (no permission class either), in a schema
    with no exception handler, whose arguments are all scalars: the wrapper's work is then
    to pass them under their Python names (graphql-core has coerced them), the source as
    `self`, `root` or `parent`, and an `Info` when asked; for two resolvers of a small query
    that was a tenth of the request."""

    field: StrawberryField
    function: Callable[..., Any]
    arguments: tuple[tuple[str, str], ...]
    """(GraphQL name, Python name) of each argument."""
    as_self: bool
    source_names: tuple[str, ...]
    """The `root` and `parent` parameters the source is passed as."""
    info_name: str | None
    info_class: type[Info[Any, Any]]

    @classmethod
    def of(cls, schema: GraphQLSchema, definition: GraphQLField) -> "DirectCall | None":
        field = (definition.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        strawberry_schema: Any = getattr(schema, "_strawberry_schema", None)
        handlers: Any = getattr(strawberry_schema, "exception_handlers", ())
        if (
            not isinstance(field, StrawberryField)
            or field.base_resolver is None
            or field.extensions
            or strawberry_schema is None
            or handlers
        ):
            return None
        arguments = []
        for name, argument in definition.args.items():
            declared = (argument.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            kind = argument.type
            inner = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
            if not isinstance(declared, StrawberryArgument) or getattr(declared, "is_maybe", True):
                return None
            if not isinstance(inner, GraphQLScalarType):
                return None  # enums and inputs: strawberry converts them
            arguments.append((name, declared.python_name))
        resolver = field.base_resolver
        if not callable(resolver.wrapped_func):  # a classmethod: strawberry refuses it
            return None
        sources = (resolver.root_parameter, resolver.parent_parameter)
        return cls(
            field,
            resolver.wrapped_func,
            tuple(arguments),
            resolver.self_parameter is not None,
            tuple(p.name for p in sources if p is not None),
            None if resolver.info_parameter is None else resolver.info_parameter.name,
            strawberry_schema.config.info_class,
        )

    def __call__(self, source: Any, info: GraphQLResolveInfo[Any], args: dict[str, Any]) -> Any:
        kwargs = {python: args[name] for name, python in self.arguments if name in args}
        for name in self.source_names:
            kwargs[name] = source
        if self.info_name is not None:
            kwargs[self.info_name] = self.info_class(_raw_info=info, _field=self.field)
        return self.function(source, **kwargs) if self.as_self else self.function(**kwargs)
