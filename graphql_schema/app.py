"""The GraphQL endpoint at /tasker/graphql: HTTP (GET shows GraphiQL, POST executes) and
websockets (graphql-transport-ws), with an offline GraphiQL. Request ids and the body size cap
come from the app's middleware.

Over HTTP, a body that is not a JSON object is a 400; when no caller could run any document
without a token, a request without a valid one is refused (401) before its document is
parsed; subscriptions are refused (400) with the websocket to use instead."""

import functools
import json
from importlib.resources import files
from typing import cast

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from graphql_schema.authorization import refusal
from graphql_schema.context import GraphQLContext, request_id_of
from graphql_schema.known_documents import run_known_query
from graphql_schema.schema import build_schema
from server.assets import CDN, asset_url
from server.container import Services
from server.domain.errors import AuthenticationFailed

PATH = "/tasker/graphql"
SUBSCRIPTIONS_OVER_HTTP = (
    f"Subscriptions are not served over HTTP: open a websocket to {PATH} "
    "(ws:// or wss://, subprotocol graphql-transport-ws) and subscribe there."
)
NOT_AN_OBJECT = 'Expected a JSON object, such as {"query": "{ __typename }", "variables": {}}.'
TOO_MANY_OPERATIONS = "TOO_MANY_OPERATIONS"


STRAWBERRY_FETCHER = """      const fetcher = GraphiQL.createFetcher({
        url: fetchURL,
        headers: defaultHeaders,
        subscriptionUrl,
      });
"""
SUBSCRIPTIONS_OVER_WEBSOCKET_FETCHER = (
    files("graphql_schema").joinpath("graphiql_fetcher.js").read_text(encoding="utf-8")
)
EXAMPLE_QUERY = (
    files("graphql_schema").joinpath("graphiql_example.graphql").read_text(encoding="utf-8")
)
EXAMPLE_VARIABLES = '{\n  "id": "paste a task id from the Tasks query"\n}'


@functools.cache
def graphiql_html() -> str:
    """Strawberry's GraphiQL page, loading the vendored copies of its CDN files (never the CDN)."""
    html = files("strawberry").joinpath("static/graphiql.html").read_text(encoding="utf-8")
    for local, cdn_url in CDN.items():
        html = html.replace(cdn_url, asset_url(local))
    html = html.replace(STRAWBERRY_FETCHER, SUBSCRIPTIONS_OVER_WEBSOCKET_FETCHER)
    html = _tasker_example(html)
    return html.replace("<title>Strawberry GraphiQL</title>", "<title>Tasker GraphQL</title>")


def _tasker_example(html: str) -> str:
    """The editor opens on Tasker operations (a task with its steps, and a subscription)
    instead of GraphiQL's generic welcome text, with a variables pane ready for a task id."""
    start = html.index("const EXAMPLE_QUERY = `") + len("const EXAMPLE_QUERY = `")
    end = html.index("`;", start)
    html = html[:start] + EXAMPLE_QUERY.replace("`", "'") + html[end:]
    variables = "React.useState(\n          parameters.variables,\n        )"
    if variables not in html:
        raise RuntimeError(
            "strawberry's GraphiQL page changed: the example variables need a new hook"
        )
    return html.replace(
        variables,
        "React.useState(\n          parameters.variables || "
        f"{json.dumps(EXAMPLE_VARIABLES)},\n        )",
    )


def graphql_error(message: str, status_code: int, code: str) -> JSONResponse:
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status_code)


class CappedOperations(BaseGraphQLTransportWSHandler[GraphQLContext, None]):
    """graphql-transport-ws with a typed error when a socket holds its maximum of
    operations at once (subscriptions, and queries or mutations still running)."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        cap = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and cap is not None
            and message["id"] not in self.operations
            and len(self.operations) >= cap
        ):
            error = GraphQLError(
                f"This connection already runs {cap} operations, the most allowed at once "
                "(TASKER_GRAPHQL_MAX_SUBSCRIPTIONS_PER_CONNECTION): complete one first, "
                "or open another connection.",
                extensions={"code": TOO_MANY_OPERATIONS},
            )
            await self.send_message(
                {
                    "id": message["id"],
                    "type": "error",  # not a status: a graphql-transport-ws message type
                    "payload": [error.formatted],
                }
            )
            return
        await super().handle_subscribe(message)


class TaskerGraphQL(GraphQL[GraphQLContext, None]):
    graphql_transport_ws_handler_class = CappedOperations

    def __init__(self, services: Services) -> None:
        settings = services.settings
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql",
            # Browsers apply no CORS rules to websockets, so the Origin header is checked here,
            # against the same origins CORS allows over HTTP.
            allowed_origins=settings.cors_origin_list,
            max_subscriptions_per_connection=settings.graphql_max_subscriptions_per_connection,
        )
        self.services = services

    def encode_json(self, data: object) -> str | bytes:
        """orjson: a fraction of json's time on a page of tasks. Strawberry's json, giving
        the same document, for what orjson refuses (a context's integer beyond 64 bits).
        Text, as the websocket protocols send it."""
        try:
            return orjson.dumps(data).decode()
        except orjson.JSONEncodeError:
            return super().encode_json(data)

    def decode_json(self, data: str | bytes) -> object:
        """A JSON object, else a 400 (strawberry answers syntax errors with one too).

        json, not orjson: orjson reads an integer beyond 64 bits as a float, so a context the
        input rules refuse would arrive as another, acceptable one."""
        try:
            value = json.loads(data)
        except UnicodeDecodeError:
            raise HTTPException(400, "The request body is not valid UTF-8") from None
        except RecursionError:
            raise HTTPException(400, "The JSON is nested too deeply") from None
        if not isinstance(value, dict):
            raise HTTPException(400, NOT_AN_OBJECT)
        return value

    def refused_before_parsing(self, context: GraphQLContext) -> GraphQLError | None:
        """With auth on and nothing waived (TASKER_*_REQUIRES_AUTH), every document needs a
        verified caller: refuse one without, before its document costs a parse."""
        gate = self.services.auth
        if not gate.enabled or gate.waived:
            return None
        try:
            gate.authenticated(context.request.scope)
        except AuthenticationFailed as exc:
            return refusal(exc, context)
        return None

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: GraphQLContext,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult]:
        if (error := self.refused_before_parsing(context)) is not None:
            return ExecutionResult(data=None, errors=[error])
        result = await super().execute_operation(
            request=request,
            request_adapter=request_adapter,
            request_data=request_data,
            context=context,
            root_value=root_value,
            sub_response=sub_response,
        )
        return cast(ExecutionResult | list[ExecutionResult], result)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: GraphQLContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, with subscriptions left to the websocket (no HTTP stream protocol
        is enabled: one would otherwise reach the executor and crash there)."""
        method = request_adapter.method
        allowed = OperationType.from_http(method) - {OperationType.SUBSCRIPTION}
        known = await run_known_query(
            self.schema,
            request_data.query,
            request_data.variables,
            context,
            request_data.operation_name,
        )
        if known is not None:
            return known
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(400, SUBSCRIPTIONS_OVER_HTTP) from exc
            raise HTTPException(400, exc.as_http_error_reason(method)) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request") from exc

    async def on_ws_connect(self, context: GraphQLContext) -> UnsetType | dict[str, object] | None:
        """`connection_init` must carry a valid token (payload `Authorization: Bearer ...`,
        else the handshake's header) when auth is on; graphql-transport-ws closes with 4403."""
        try:
            context.services.auth.connect(context.request.scope, context.connection_params)
        except AuthenticationFailed as exc:
            raise ConnectionRejectionError({"message": exc.message, "code": exc.code}) from None
        return cast(UnsetType, UNSET)  # UNSET: acknowledge with no payload

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GraphQLContext:
        context = GraphQLContext(self.services, request, response, request_id_of(request))
        if isinstance(response, Response):
            response.headers["X-Request-ID"] = context.request_id
        return context

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_html())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.known_answer(request) or await self.run(request)
        except HTTPException as exc:
            response = graphql_error(exc.reason, exc.status_code, "BAD_REQUEST")
        await response(scope, receive, send)

    async def known_answer(self, request: Request) -> Response | None:
        """The answer to a query (POSTed, or sent in a GET's parameters) whose document
        already passed everything (`graphql_schema.known_documents`), without strawberry's
        HTTP view around it: for a small query that view (body parsing, adapters, hooks) cost
        as much as executing it. None: anything else, including any request the view would
        refuse, runs the full way (the body read here stays on the request for it)."""
        sent = await self.sent_operation(request)
        if sent is None:
            return None
        query, variables, name = sent
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, sub_response)
        result = await run_known_query(self.schema, query, variables, context, name)
        if result is None:
            return None
        return self.create_response(await self.process_result(request, result), sub_response)

    async def sent_operation(
        self, request: Request
    ) -> tuple[str, dict[str, object] | None, str | None] | None:
        """The request's document, variables and operation name, when well formed."""
        try:
            if request.method == "POST":
                data = self.decode_json(await request.body())
            elif request.method == "GET":
                params = request.query_params
                raw = params.get("variables")
                data = {
                    "query": params.get("query"),
                    "variables": self.decode_json(raw) if raw else None,
                    "operationName": params.get("operationName"),
                }
            else:
                return None
        except (HTTPException, ValueError):  # the full way answers these with its 400
            return None
        if not isinstance(data, dict):
            return None
        query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
        if not (
            isinstance(query, str)
            and (variables is None or isinstance(variables, dict))
            and (name is None or isinstance(name, str))
        ):
            return None
        return query, variables, name


def routes(services: Services) -> list[BaseRoute]:
    """Routes serving GraphQL over HTTP and websockets."""
    app = TaskerGraphQL(services)
    return [Route(PATH, app, methods=["GET", "POST"]), WebSocketRoute(PATH, app)]
