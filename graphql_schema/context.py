import re
from dataclasses import dataclass, field
from uuid import uuid4

import strawberry
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from graphql_schema.loaders import Loaders
from server.container import Services

REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(conn: HTTPConnection) -> str:
    """The id the app's middleware gave the request; else the caller's safe X-Request-ID."""
    given = conn.scope.get("state", {}).get("request_id") or conn.headers.get(REQUEST_ID_HEADER)
    return given if given and _SAFE_ID.match(given) else uuid4().hex


@dataclass
class GraphQLContext:
    """What every resolver gets: the core services, batch loaders and the request."""

    services: Services
    request: Request | WebSocket
    response: Response | WebSocket | None = None
    request_id: str = field(default_factory=lambda: uuid4().hex)
    connection_params: dict[str, object] | None = None
    """A websocket's `connection_init` payload (strawberry sets it; it may carry the token)."""
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.renew_loaders()

    def renew_loaders(self) -> None:
        """Fresh loaders (their caches last one operation; a websocket runs many)."""
        self.loaders = Loaders(self.services)

    @property
    def is_websocket(self) -> bool:
        return isinstance(self.request, WebSocket)


Info = strawberry.Info[GraphQLContext, None]
