"""Known queries compiled once into a tree of field plans, and answered by walking it.

For every request, graphql-core's executor works the document out again: an execution
context, the fields of each object collected, and for every field a resolve info, a path and
a chain of completion calls through its type's wrappers. For a document that already passed
parsing, bounds, authorization and validation (`graphql_schema.known_documents`), all of that
but the values is the same each time. Here it is done once per document: the operation
becomes a tree of field plans (a plain field's reader, or a resolver and how to complete its
value), and a request walks the tree. Plain fields are read in place. Resolvers are called
as graphql-core calls them: the same strawberry resolver, with a real resolve info and the
arguments coerced by graphql-core. Sibling fields' awaitables are awaited together, so the
batch loaders still read a page's steps in one query.

Only answers without errors are produced here. A document with a directive, introspection
beyond `__typename`, or a field of an abstract type is not compiled. A run that meets
anything graphql-core would report stops with `Fallback`: an exception, a null where the
schema says non-null, a value its scalar refuses, variables that do not coerce. The caller
then runs the request the full way, which reports it as always.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

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
    default_field_resolver,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import Path
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.field import StrawberryField
from strawberry.types.info import Info

from graphql_schema.caches import TextCache
from graphql_schema.plain_fields import SLOW, leaf_completer, plain_reader


class Fallback(Exception):
    """The run met something only graphql-core's executor reports: run it the full way."""


class Uncompilable(Exception):
    """The document uses something plans do not cover."""


def is_awaitable(value: Any) -> bool:
    return bool(optimized_is_awaitable(value))


Completion = Callable[["Run", Any, Path], Any]
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


@dataclass(frozen=True, slots=True)
class ObjectPlan:
    type: GraphQLObjectType
    fields: tuple[FieldPlan, ...]


@dataclass(frozen=True, slots=True)
class OperationPlan:
    schema: GraphQLSchema
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    root: ObjectPlan


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
            known = compile_query(self.schema, document, operation) or False
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
    return OperationPlan(schema, operation, fragments, plan)


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
        return _list(_completion(schema, inner.of_type, selection_sets, fragments), nullable)
    if isinstance(inner, GraphQLObjectType):
        return _object(_object_plan(schema, inner, selection_sets, fragments), nullable)
    raise Uncompilable  # an interface or a union


def _leaf(coerce: Callable[[Any], Any]) -> Completion:
    def complete(run: "Run", value: Any, path: Path) -> Any:
        out = coerce(value)
        if out is SLOW:
            raise Fallback
        return out

    return complete


def _list(item: Completion, nullable: bool) -> Completion:
    def complete(run: "Run", value: Any, path: Path) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, Iterable) or isinstance(value, str | bytes | Mapping):
            raise Fallback
        return run.items(item, value, path)

    return complete


def _object(plan: ObjectPlan, nullable: bool) -> Completion:
    def complete(run: "Run", value: Any, path: Path) -> Any:
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
        strawberry_schema = getattr(schema, "_strawberry_schema", None)
        if (
            not isinstance(field, StrawberryField)
            or field.base_resolver is None
            or field.extensions
            or strawberry_schema is None
            or strawberry_schema.exception_handlers
        ):
            return None
        arguments = []
        for name, argument in definition.args.items():
            declared = (argument.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            kind = argument.type
            inner = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
            if not isinstance(declared, StrawberryArgument) or declared.is_maybe:
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


class Run:
    """One request's walk of a plan."""

    def __init__(self, plan: OperationPlan, context: Any, variables: VariableValues) -> None:
        self.plan = plan
        self.context = context
        self.variables = variables
        self.helpers = GraphQLResolveInfoHelpers(gather=_gather, track=_refuse_tracking)

    async def data(self) -> dict[str, Any]:
        out = self.object(self.plan.root, None, None)
        return cast(dict[str, Any], await out if is_awaitable(out) else out)

    def object(self, plan: ObjectPlan, source: Any, path: Path | None) -> Any:
        """The object's dictionary, or an awaitable of it."""
        out: dict[str, Any] = {}
        waiting: list[tuple[str, Awaitable[Any]]] = []
        try:
            for field in plan.fields:
                if field.read is not None:
                    value = field.read(source)
                    if value is SLOW:
                        raise Fallback
                else:
                    value = self.resolve(plan.type, field, source, path)
                    if is_awaitable(value):
                        waiting.append((field.key, value))
                out[field.key] = value
        except BaseException:
            _discard(w for _, w in waiting)
            raise
        if not waiting:
            return out
        return self._fill(out, waiting)

    async def _fill(
        self, out: dict[str, Any], waiting: list[tuple[str, Awaitable[Any]]]
    ) -> dict[str, Any]:
        values = await _gather([w for _, w in waiting])
        for (key, _), value in zip(waiting, values, strict=True):
            out[key] = value
        return out

    def items(self, complete: Completion, values: Iterable[Any], path: Path) -> Any:
        """A list's completed items, or an awaitable of them."""
        items: list[Any] = []
        waiting: list[int] = []
        try:
            for i, value in enumerate(values):
                item = complete(self, value, path.add_key(i))
                if is_awaitable(item):
                    waiting.append(i)
                items.append(item)
        except BaseException:
            _discard(items[i] for i in waiting)
            raise
        if not waiting:
            return items

        async def settled() -> list[Any]:
            values = await _gather([items[i] for i in waiting])
            for i, value in zip(waiting, values, strict=True):
                items[i] = value
            return items

        return settled()

    def resolve(
        self, parent: GraphQLObjectType, field: FieldPlan, source: Any, path: Path | None
    ) -> Any:
        definition = field.definition
        assert definition is not None and field.complete is not None  # `__typename` is read
        field_path = Path(path, field.key, parent.name)
        plan = self.plan
        info: GraphQLResolveInfo[Any] = GraphQLResolveInfo(
            field.nodes[0].name.value,
            field.nodes,
            definition.type,
            parent,
            field_path,
            plan.schema,
            plan.fragments,
            None,
            plan.operation,
            self.variables,
            self.context,
            cast(Any, optimized_is_awaitable),  # a TypeGuard in graphql-core's stubs
            None,
            self.helpers,
        )
        args = (
            get_argument_values(definition, field.nodes[0], self.variables)
            if definition.args
            else {}
        )
        if field.call is not None:
            result = field.call(source, info, args)
        else:
            resolver = definition.resolve or default_field_resolver
            result = resolver(source, info, **args)
        if is_awaitable(result):
            return self._complete_later(field.complete, result, field_path)
        return field.complete(self, result, field_path)

    async def _complete_later(
        self, complete: Completion, result: Awaitable[Any], path: Path
    ) -> Any:
        out = complete(self, await result, path)
        return await out if is_awaitable(out) else out


async def answer(
    plan: OperationPlan, context: Any, variables: dict[str, Any] | None
) -> dict[str, Any]:
    """The query's data; Fallback when only graphql-core's executor can answer it."""
    coerced = get_variable_values(
        plan.schema, plan.operation.variable_definitions or (), variables or {}
    )
    if not isinstance(coerced, VariableValues):
        raise Fallback  # the full way reports the variables' errors
    try:
        return await Run(plan, context, coerced).data()
    except Fallback:
        raise
    except Exception as exc:  # graphql-core reports it, located, on the full way
        raise Fallback from exc


async def _gather(awaitables: Sequence[Awaitable[Any]]) -> list[Any]:
    """Every value, awaited together (one alone is awaited in place, with no task); when one
    fails, the others are cancelled, so nothing keeps running for a discarded answer."""
    if len(awaitables) == 1:
        return [await awaitables[0]]
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


def _refuse_tracking(values: Sequence[Any]) -> None:
    """Resolvers here do not track background work; one that tries runs the full way."""
    raise Fallback


def _discard(awaitables: Iterable[Awaitable[Any]]) -> None:
    """Closes what was started but will not be awaited (no never-awaited warnings)."""
    for awaitable in awaitables:
        close = getattr(awaitable, "close", None) or getattr(awaitable, "cancel", None)
        if close is not None:
            close()
