"""Known queries answered by walking their compiled plan (`graphql_schema.query_plans`).

A request walks the plan: plain fields are read in place; resolvers are called as
graphql-core calls them (the same resolver, a real resolve info, the arguments coerced by
graphql-core); sibling fields' awaitables are awaited together, so the batch loaders still
read a page's steps in one query.

Only answers without errors are produced here. A run that meets anything graphql-core would
report stops with `Fallback`: an exception, a null where the schema says non-null, a value
its scalar refuses, variables that do not coerce. The caller then runs the request the full
way, which reports it as always.
"""

import asyncio
import inspect
from collections.abc import Awaitable, Coroutine, Iterable, Sequence
from typing import Any, cast

from graphql import GraphQLObjectType, GraphQLResolveInfo, default_field_resolver
from graphql.execution.values import (
    VariableValues,
    VariableValuesOrErrors,
    get_argument_values,
    get_variable_values,
)
from graphql.pyutils import Path
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.execution.is_awaitable import optimized_is_awaitable

from graphql_schema.plain_fields import SLOW
from graphql_schema.query_plans import Completion, Fallback, FieldPlan, ObjectPlan, OperationPlan


def is_awaitable(value: Any) -> bool:
    return bool(optimized_is_awaitable(value))


class Run:
    """One request's walk of a plan."""

    def __init__(self, plan: OperationPlan, context: Any, variables: VariableValues) -> None:
        self.plan = plan
        self.context = context
        self.variables = variables
        self.helpers = GraphQLResolveInfoHelpers(gather=_gather, track=_refuse_tracking)
        self.made: list[Coroutine[Any, Any, Any]] = []
        """Coroutines made for this run, so the ones never started can be closed if it stops."""

    def hold(self, awaitable: Any) -> Any:
        if isinstance(awaitable, Coroutine):
            self.made.append(awaitable)
        return awaitable

    def close_unstarted(self) -> None:
        """Closes the coroutines a stopped run made but never awaited (no warnings later)."""
        for coroutine in self.made:
            if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
                coroutine.close()

    async def data(self) -> dict[str, Any]:
        out = self.object(self.plan.root, None, None)
        return cast(dict[str, Any], await out if is_awaitable(out) else out)

    def object(self, plan: ObjectPlan, source: Any, path: Path | None) -> Any:
        """The object's dictionary, or an awaitable of it."""
        out: dict[str, Any] = {}
        waiting: list[tuple[str, Awaitable[Any]]] = []
        for field in plan.fields:
            if field.read is not None:
                value = field.read(source)
                if value is SLOW:
                    raise Fallback
            elif field.attribute is not None:
                value = field.attribute(source)
                if value is SLOW:
                    raise Fallback
                assert field.complete is not None  # an object field has its completion
                value = field.complete(self, value, Path(path, field.key, plan.type.name))
                if is_awaitable(value):
                    waiting.append((field.key, value))
            else:
                value = self.resolve(plan.type, field, source, path)
                if is_awaitable(value):
                    waiting.append((field.key, value))
            out[field.key] = value
        if not waiting:
            return out
        return self.hold(self._fill(out, waiting))

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
        for i, value in enumerate(values):
            item = complete(self, value, path.add_key(i))
            if is_awaitable(item):
                waiting.append(i)
            items.append(item)
        if not waiting:
            return items

        async def settled() -> list[Any]:
            values = await _gather([items[i] for i in waiting])
            for i, value in zip(waiting, values, strict=True):
                items[i] = value
            return items

        return self.hold(settled())

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
            self.hold(result)
            return self.hold(self._complete_later(field.complete, result, field_path))
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
    inputs = variables or {}
    coerced: VariableValuesOrErrors | None = (
        plan.variables.coerce(inputs) if plan.variables is not None else None
    )
    if coerced is None:  # not the plain case: graphql-core coerces them, or reports why not
        coerced = get_variable_values(
            plan.schema, plan.operation.variable_definitions or (), inputs
        )
    if not isinstance(coerced, VariableValues):
        raise Fallback  # the full way reports the variables' errors
    run = Run(plan, context, coerced)
    try:
        return await run.data()
    except Exception as exc:  # graphql-core reports it, located, on the full way
        run.close_unstarted()
        if isinstance(exc, Fallback):
            raise
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
