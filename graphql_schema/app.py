"""The GraphQL endpoint at /tasker/graphql: HTTP (GET shows GraphiQL, POST executes) and
websockets (graphql-transport-ws), with an offline GraphiQL. Request ids and the body size cap
come from the app's middleware."""

import functools
from importlib.resources import files
from typing import cast

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from graphql_schema.context import GraphQLContext, request_id_of
from graphql_schema.schema import build_schema
from server.assets import CDN, asset_url
from server.container import Services
from server.domain.errors import AuthenticationFailed

PATH = "/tasker/graphql"


@functools.cache
def graphiql_html() -> str:
    """Strawberry's GraphiQL page, loading the vendored copies of its CDN files (never the CDN)."""
    html = files("strawberry").joinpath("static/graphiql.html").read_text(encoding="utf-8")
    for local, cdn_url in CDN.items():
        html = html.replace(cdn_url, asset_url(local))
    return html.replace("<title>Strawberry GraphiQL</title>", "<title>Tasker GraphQL</title>")


def graphql_error(message: str, status_code: int, code: str) -> JSONResponse:
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status_code)


class TaskerGraphQL(GraphQL[GraphQLContext, None]):
    def __init__(self, services: Services) -> None:
        super().__init__(
            build_schema(services.settings),
            graphql_ide="graphiql",
            # Browsers' cross-origin websockets: the same origins CORS allows (issue 5).
            allowed_origins=services.settings.cors_origin_list,
        )
        self.services = services

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
        try:
            response = await self.run(Request(scope, receive))
        except HTTPException as exc:
            response = graphql_error(exc.reason, exc.status_code, "BAD_REQUEST")
        await response(scope, receive, send)


def routes(services: Services) -> list[BaseRoute]:
    """Routes serving GraphQL over HTTP and websockets."""
    app = TaskerGraphQL(services)
    return [Route(PATH, app, methods=["GET", "POST"]), WebSocketRoute(PATH, app)]
