"""The schema: Query composed from per-feature mixins, Mutation, Subscription, hardening.

To add query fields from another module, define a `@strawberry.type` class of fields there
(as `graphql_schema.analytics.AnalyticsQuery` does), add it to `Query`'s bases below, add its
rows to `graphql_schema.permissions.FIELD_PERMISSIONS`, and refresh `schema.graphql`
(`make schema`); the schema tests fail until all three are done.
"""

import logging

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from graphql_schema.analytics import AnalyticsQuery
from graphql_schema.authorization import Authorization
from graphql_schema.batch import BatchMutations
from graphql_schema.console_fields import ConsoleQuery
from graphql_schema.extensions import ErrorShaping, Limits, is_unexpected, request_id
from graphql_schema.fast_enums import speed_up_enums
from graphql_schema.mutations import Mutation as TaskMutations
from graphql_schema.plain_fields import PlainFieldsExecutor
from graphql_schema.queries import CatalogueQueries, TaskQueries
from graphql_schema.query_plans import QueryPlans
from graphql_schema.schedules import ScheduleQuery
from graphql_schema.subscriptions import Subscription
from server.config import Settings

log = logging.getLogger("tasker.graphql")


@strawberry.type(
    name="Query", description="Reads: the handler catalogue, tasks, analytics and health."
)
class Query(CatalogueQueries, TaskQueries, AnalyticsQuery, ConsoleQuery, ScheduleQuery):
    pass


@strawberry.type(name="Mutation", description="Commands on tasks and steps.")
class Mutation(TaskMutations, BatchMutations):
    pass


class TaskerSchema(strawberry.Schema):
    """Logs each error once: crashes with a traceback and the request id, the rest quietly."""

    limits: Limits
    """The query limits and document caches its requests share."""
    plans: QueryPlans
    """Its known queries' compiled plans."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        rid = request_id(execution_context)
        for error in errors:
            if is_unexpected(error):
                log.error(
                    "GraphQL crash [request_id=%s] at %s: %s",
                    rid,
                    error.path,
                    error.message,
                    exc_info=error.original_error,
                )
            else:
                log.debug("GraphQL error [request_id=%s]: %s", rid, error.message)


def build_schema(settings: Settings) -> TaskerSchema:
    limits = Limits(settings)
    schema = TaskerSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # Authorization before the validation rules (the limits' extension), so a refused
        # caller never costs a validation; a refusal replaces any earlier error.
        extensions=[ErrorShaping, Authorization, limits.extension],
        execution_context_class=PlainFieldsExecutor.for_schema(),
    )
    schema.limits = limits
    schema.plans = QueryPlans(schema._schema, limits.cache_size, limits.cache_chars)
    speed_up_enums(schema._schema)
    return schema


def sdl() -> str:
    """The schema in SDL, as committed in `graphql_schema/schema.graphql`."""
    return build_schema(Settings()).as_str() + "\n"
