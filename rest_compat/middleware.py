"""ASGI middleware for the HTTP surface: a cap on request body size and a masked 500 for
anything unexpected (the request id comes from `server.infra.logging.RequestIdMiddleware`).

All plain ASGI (no BaseHTTPMiddleware) so streaming responses such as the server-sent events
stay streaming. Listed in `middleware` for `Starlette(middleware=...)`.
"""

import json
import logging

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_compat.errors import error_body

log = logging.getLogger(__name__)


class BodyLimitMiddleware:
    """Refuses request bodies over `max_bytes` with 413.

    A declared `Content-Length` over the limit is refused before anything is read; a chunked
    body is counted as it arrives and reading fails with HTTPException(413) once it passes the
    limit, which the app's handlers turn into the error envelope.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A scan of the raw pairs: Headers() builds a case-folded copy of all of them.
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted_receive, send)

    def _message(self) -> str:
        return f"Request body is larger than {self.max_bytes} bytes"

    async def _refuse(self, send: Send) -> None:
        body = error_body("PayloadTooLarge", "PAYLOAD_TOO_LARGE", self._message())
        # The body was never read, so the connection cannot carry another request.
        await _send_json(send, 413, body, close=True)


class UnexpectedErrorMiddleware:
    """Answers an unexpected exception with the masked 500 envelope, logged with the request id.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then drops the
    keep-alive connection, so a client's next request on it fails too; this one does not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            request_id = scope.get("state", {}).get("request_id")
            log.exception("request %s failed", request_id)
            if started:
                raise
            details = {"request_id": request_id} if request_id else None
            body = error_body("InternalError", "INTERNAL_ERROR", "Internal server error", details)
            await _send_json(send, 500, body)


def middleware(max_body_bytes: int) -> list[Middleware]:
    """The stack for `Starlette(middleware=...)`, outermost first."""
    return [
        Middleware(BodyLimitMiddleware, max_bytes=max_body_bytes),
        Middleware(UnexpectedErrorMiddleware),
    ]


async def _send_json(
    send: Send, status: int, body: dict[str, object], *, close: bool = False
) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
