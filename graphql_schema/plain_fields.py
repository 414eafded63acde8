"""An executor that completes plain fields without graphql-core's per-field machinery.

Most fields of a read are plain: a strawberry field with no arguments and no field
extension, whose value is an attribute of the object or what a method of the object alone
returns (`StepType`'s fields read its view), and whose type is a scalar, an enum or a list of
them (`Step.status`, `Task.id`, `Step.parents`). graphql-core still runs
its whole path for each one (a resolve info, a path, `complete_value` through the non-null
and list wrappers, about ten calls): for a page of 25 tasks with their steps that is most of
the request. Here such a field is read and coerced in one step, in selection order; and an
object (or a list of objects, such as a task's steps) whose selection holds only plain
fields becomes its dictionary in one loop, without graphql-core's calls per object.

Anything unusual (a null where the schema says non-null, a value its scalar refuses, an
exception while reading) goes back through graphql-core's own path for that field, which
produces the same error, at the same path, as before. Fields with resolvers, arguments,
`__typename` and object types always take that path. When any schema extension resolves
fields (a middleware), nothing is taken here at all.
"""

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, ClassVar

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

SLOW = object()
"""A field this executor leaves to graphql-core."""

Complete = Callable[[Any], Any]
"""Reads one plain field of an object: its output value, or SLOW."""
Plan = tuple[tuple[str, Complete], ...]
"""An object's whole selection when every field in it is plain: (response key, reader)."""


def _coerce(leaf: GraphQLLeafType, nullable: bool) -> Complete:
    coerce = leaf.coerce_output_value

    def complete(value: Any) -> Any:
        if value is None:
            return None if nullable else SLOW
        if isinstance(value, Exception):
            return SLOW
        try:
            out = coerce(value)
        except Exception:  # graphql-core reports it, located, on the slow path
            return SLOW
        return SLOW if out is None or out is Undefined else out

    return complete


def leaf_completer(output: GraphQLOutputType) -> Complete | None:
    """How to complete a value of `output`, when it is a (list of) scalar or enum."""
    nullable = not isinstance(output, GraphQLNonNull)
    inner = output.of_type if isinstance(output, GraphQLNonNull) else output
    if isinstance(inner, GraphQLLeafType):
        return _coerce(inner, nullable)
    if not isinstance(inner, GraphQLList):
        return None
    item_type = inner.of_type
    item_nullable = not isinstance(item_type, GraphQLNonNull)
    item = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
    if not isinstance(item, GraphQLLeafType):
        return None
    complete_item = _coerce(item, item_nullable)

    def complete_list(value: Any) -> Any:
        if value is None:
            return None if nullable else SLOW
        if not isinstance(value, list | tuple):
            return SLOW
        out = [complete_item(v) for v in value]
        return SLOW if any(v is SLOW for v in out) else out

    return complete_list


def attribute_name(field: GraphQLField) -> str | None:
    """The attribute a strawberry field with no resolver, argument or extension reads (its
    value is that attribute of the object), None for any other field."""
    if field.args or not getattr(field.resolve, "_is_default", False):
        return None
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if getattr(definition, "extensions", None):
        return None  # strawberry marks it default too, but its resolver runs the extensions
    name = getattr(definition, "python_name", None)
    return name if isinstance(name, str) else None


def attribute_reader(name: str) -> Complete:
    """Reads the attribute `name` of an object, or SLOW when that raises."""

    def read(source: Any) -> Any:
        try:
            return getattr(source, name)
        except Exception:
            return SLOW

    return read


def method_of_source(field: GraphQLField) -> Callable[[Any], Any] | None:
    """The resolver of a strawberry field that is a method of the object alone (no argument,
    no `info`, no extension, not async), None for any other field: calling it on the object
    is all strawberry's wrapper would do (`StepType`'s fields, which read the step's view)."""
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if field.args or not isinstance(definition, StrawberryField) or definition.extensions:
        return None
    resolver = definition.base_resolver
    if (
        resolver is None
        or resolver.is_async
        or resolver.self_parameter is None
        or resolver.info_parameter is not None
        or resolver.root_parameter is not None
        or resolver.parent_parameter is not None
        or resolver.arguments
        or not callable(resolver.wrapped_func)  # a classmethod or staticmethod
    ):
        return None
    function: Callable[[Any], Any] = resolver.wrapped_func
    return function


def plain_reader(field: GraphQLField) -> Complete | None:
    """A reader for a plain field, None for any other: one whose value is an attribute of the
    object or what a method of the object alone returns, of a (list of) scalar or enum type."""
    complete = leaf_completer(field.type)
    if complete is None:
        return None
    name = attribute_name(field)
    get = method_of_source(field) if name is None else attrgetter(name)
    if get is None:
        return None

    def read(source: Any) -> Any:
        try:
            value = get(source)
        except Exception:
            return SLOW
        return complete(value)

    return read


class PlainFieldsExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with plain fields completed in place (see the module)."""

    _object_plans: dict[int, tuple[GroupedFieldSet, Plan | None]]
    """This request's objects' plans, by their collected field set (kept alive with it)."""

    plans: ClassVar[dict[str, dict[str, Complete]]]
    """Per object type name, its plain fields' readers (one table per schema: see `for_schema`)."""

    @classmethod
    def for_schema(cls) -> type["PlainFieldsExecutor"]:
        """A subclass with its own table (type names are only unique within one schema)."""
        return type("PlainFieldsExecutor", (cls,), {"plans": {}})

    def _readers(self, parent_type: GraphQLObjectType) -> dict[str, Complete]:
        readers = self.plans.get(parent_type.name)
        if readers is None:
            readers = {}
            for name, field in parent_type.fields.items():
                read = plain_reader(field)
                if read is not None:
                    readers[name] = read
            self.plans[parent_type.name] = readers
        return readers

    def _plan(self, object_type: GraphQLObjectType, details: FieldDetailsList) -> Plan | None:
        """The selection of `details` on `object_type` as a Plan, if all of it is plain."""
        if object_type.is_type_of is not None or self._resolving_middleware():
            return None
        collected = self.collect_subfields(object_type, details)  # memoized by graphql-core
        plans: dict[int, tuple[GroupedFieldSet, Plan | None]] | None = getattr(
            self, "_object_plans", None
        )
        if plans is None:
            plans = {}
            self._object_plans = plans
        fields = collected.grouped_field_set
        known = plans.get(id(fields))
        if known is not None:
            return known[1]
        plan: Plan | None = None
        if not collected.new_defer_usages and not collected.forbidden_directive_instances:
            readers = self._readers(object_type)
            steps = [(key, readers.get(d[0].node.name.value)) for key, d in fields.items()]
            if all(read is not None for _, read in steps):
                plan = tuple((key, read) for key, read in steps if read is not None)
        plans[id(fields)] = (fields, plan)  # the set kept alive, so its id stays its own
        return plan

    def _resolving_middleware(self) -> bool:
        manager = self.middleware_manager
        return manager is not None and bool(manager._middleware_resolvers)

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        item_type = return_type.of_type
        nullable = not isinstance(item_type, GraphQLNonNull)
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if isinstance(result, list) and isinstance(object_type, GraphQLObjectType):
            plan = self._plan(object_type, field_details_list)
            rows = None if plan is None else plain_rows(plan, result, nullable)
            if rows is not None:
                return rows
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        plan = self._plan(return_type, field_details_list)
        row = None if plan is None else _row(plan, result)
        if row is not None:
            return row
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        if self._resolving_middleware():
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        readers = self._readers(parent_type)
        results: dict[str, Any] = {}
        rest: GroupedFieldSet = {}
        for response_name, details in grouped_field_set.items():
            read = readers.get(details[0].node.name.value)
            value = SLOW if read is None else read(source_value)
            if value is SLOW:
                rest[response_name] = details
            results[response_name] = value
        if not rest:
            return results
        others = super().execute_fields(parent_type, source_value, path, rest, position_context)
        if not self.is_awaitable(others):
            return _merge(results, others)  # type: ignore[arg-type]

        async def merged() -> dict[str, Any]:
            return _merge(results, await others)

        return merged()


def _merge(results: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
    """`results` in selection order, its SLOW places filled by graphql-core's answers (a
    field graphql-core skipped, as it does an unknown one, is left out as it would be)."""
    return {
        key: others[key] if value is SLOW else value
        for key, value in results.items()
        if value is not SLOW or key in others
    }


def _row(plan: Plan, source: Any) -> dict[str, Any] | None:
    """One object's dictionary, or None when any of its fields needs graphql-core."""
    row = {}
    for key, read in plan:
        value = read(source)
        if value is SLOW:
            return None
        row[key] = value
    return row


def plain_rows(plan: Plan, sources: Iterable[Any], nullable: bool) -> list[Any] | None:
    """A list of objects' dictionaries, or None when any item needs graphql-core (a null the
    list's type refuses, an exception as a value, a field that is not plain here)."""
    rows: list[Any] = []
    for source in sources:
        if source is None:
            if not nullable:
                return None
            rows.append(None)
            continue
        row = None if isinstance(source, Exception) else _row(plan, source)
        if row is None:
            return None
        rows.append(row)
    return rows
