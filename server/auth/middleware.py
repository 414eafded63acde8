"""The HTTP security middleware: header size caps (431), authentication of the bearer token,
rate limiting (429; on websockets the connection and each operation it starts), security
headers, and CORS when configured.

Authentication here only verifies the token and records the outcome in the connection's
state (`Gate.authentication`); whether a request needs it, and which permissions, is decided
where the request is understood (REST operations, GraphQL documents), through the same `Gate`.
So `/health/live`, static files and the HTML pages stay reachable without a token.

Plain ASGI (no BaseHTTPMiddleware) so server-sent event streams stay streaming.
"""

import json
from collections.abc import Iterable
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth.gate import Gate
from server.auth.ratelimit import RateLimiter
from server.config import Settings
from server.domain.errors import RateLimited

# A bearer token past 8 KiB is refused by most proxies anyway; the total cap keeps one request
# from making the server buffer and scan megabytes of headers.
MAX_AUTHORIZATION_BYTES: Final = 8 * 1024
MAX_HEADER_BYTES: Final = 64 * 1024
# Load balancer probes are never limited (nor authenticated: they need no token).
UNLIMITED_PATHS: Final = frozenset({"/tasker/health/live", "/tasker/health/ready"})
OPERATION_MARKERS: Final = ("subscribe", "start")
POLICY_VIOLATION: Final = 1008  # closing a websocket before accept: a 403 to the client

SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The pages load scripts of their own (GraphiQL, Swagger UI, the console, diagrams), some
    # inline, so scripts are not restricted; framing, plugins and <base> hijacking are.
    "Content-Security-Policy": (
        "frame-ancestors 'none'; base-uri 'self'; object-src 'none'; form-action 'self'"
    ),
}
CORS_HEADERS: Final = ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID",
                       "X-Request-ID")  # fmt: skip
CORS_EXPOSED: Final = ("X-Request-ID", "Retry-After", "Location", "Age", "X-Tasker-Cache",
                       "X-Tasker-Generated-At")  # fmt: skip


class SecurityMiddleware:
    """Caps headers, authenticates, rate-limits and adds security headers, in that order."""

    def __init__(self, app: ASGIApp, gate: Gate, limiter: RateLimiter | None) -> None:
        self.app = app
        self.gate = gate
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.limiter is not None:
            await self.app(scope, self._closing_limiter(receive), send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if _headers_too_large(scope["headers"]):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1009})
                return
            await error_response(send, 431, "RequestHeaderFieldsTooLarge", "HEADERS_TOO_LARGE",
                         "Request header fields too large")  # fmt: skip
            return
        self.gate.authentication(scope)  # verified once; the REST and GraphQL checks reuse it
        if self.limiter is not None:
            refused = await self._limit(scope)
            if refused is not None and scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
                return
            if refused is not None:
                await error_response(send, 429, refused.type, refused.code, refused.message,
                             {"Retry-After": str(refused.retry_after)})  # fmt: skip
                return
            if scope["type"] == "websocket":
                # Each operation a socket starts counts as a request of its own.
                receive = self._counting_operations(scope, receive, send)
        if scope["type"] == "http":
            send = _with_security_headers(send)
        await self.app(scope, receive, send)

    def _closing_limiter(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self.limiter is not None:
                await self.limiter.close()
            return message

        return wrapped

    def _counting_operations(self, scope: Scope, receive: Receive, send: Send) -> Receive:
        """`receive` for a websocket whose subscribe/start messages are rate-limited: a refused
        one is answered with the protocol's error message for its id and never reaches the app.
        The key is the subject its `connection_init` proved (the gate keeps it in the scope)."""

        async def counted() -> Message:
            while True:
                message = await receive()
                operation = _operation(message)
                if operation is None:
                    return message
                refused = await self._limit(scope)
                if refused is None:
                    return message
                error = {"message": refused.message, "extensions": {"code": refused.code,
                         "retryAfter": refused.retry_after}}  # fmt: skip
                kind, op_id = operation
                payload: object = [error] if kind == "subscribe" else error
                reply = {
                    "id": op_id,
                    "type": "error",  # not a status: a graphql-transport-ws message type
                    "payload": payload,
                }
                await send({"type": "websocket.send", "text": json.dumps(reply)})

        return counted

    async def _limit(self, scope: Scope) -> RateLimited | None:
        assert self.limiter is not None
        if scope["path"] in UNLIMITED_PATHS or scope.get("method") == "OPTIONS":
            return None
        subject = self.gate.subject(scope)
        client = scope.get("client")
        key = f"sub:{subject}" if subject else f"ip:{client[0] if client else 'unknown'}"
        retry_after = await self.limiter.hit(key)
        return RateLimited(retry_after) if retry_after is not None else None


def _operation(message: Message) -> tuple[str, object] | None:
    """(type, id) of a graphql-transport-ws `subscribe` or graphql-ws `start` message."""
    if message["type"] != "websocket.receive":
        return None
    raw = message.get("text")
    if raw is None:
        raw = bytes(message.get("bytes") or b"").decode("utf-8", "replace")
    if not any(kind in raw for kind in OPERATION_MARKERS):  # a cheap look before parsing
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None  # the protocol handler answers malformed messages itself
    if isinstance(parsed, dict) and parsed.get("type") in ("subscribe", "start"):
        return str(parsed["type"]), parsed.get("id")
    return None


def middleware(gate: Gate, settings: Settings) -> Middleware:
    """The security middleware for `Starlette(middleware=...)` (inside the request id)."""
    return Middleware(SecurityMiddleware, gate=gate, limiter=RateLimiter.from_settings(settings))


def cors(settings: Settings) -> list[Middleware]:
    """CORS for the configured origins (outermost, so preflights are answered first); none
    when `TASKER_CORS_ORIGINS` is empty. No cookies are involved, so no credentials mode."""
    origins = settings.cors_origin_list
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=list(CORS_HEADERS),
            expose_headers=list(CORS_EXPOSED),
            max_age=600,
        )
    ]


def _headers_too_large(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    total = 0
    for name, value in headers:
        total += len(name) + len(value)
        if total > MAX_HEADER_BYTES:
            return True
        if len(value) > MAX_AUTHORIZATION_BYTES and name.lower() == b"authorization":
            return True
    return False


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("X-Content-Type-Options", "nosniff")
            if headers.get("content-type", "").startswith("text/html"):
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            if message["status"] == 401:
                headers.setdefault("WWW-Authenticate", 'Bearer realm="tasker"')
        await send(message)

    return wrapped


async def error_response(
    send: Send,
    status: int,
    type_: str,
    code: str,
    message: str,
    extra: dict[str, str] | None = None,
) -> None:
    """The seed's error envelope, for refusals made before the app's handlers are reached."""
    body = json.dumps({"error": {"type": type_, "message": message, "code": code}}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        # The request body was never read, so the connection cannot carry another request.
        (b"connection", b"close"),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
