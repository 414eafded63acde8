"""Defences against a browser being used against the server by another site: the Host header
(DNS rebinding), the Content-Type of request bodies and the Origin of state-changing requests
and websockets (cross-site request forgery, cross-site websocket hijacking).

They matter most in open mode (no key: anyone who reaches the port may act), where a page on
any site can make the visitor's browser post to `http://127.0.0.1:8000` without a preflight
("simple" requests: `text/plain`, form bodies, or no body), and a rebinding DNS name makes the
browser treat the server as same-origin with the attacker's page. So:

- Host: checked against `TASKER_ALLOWED_HOSTS` by Starlette's `TrustedHostMiddleware`; by
  default, in open mode, the loopback names (and the address `tasker serve` listens on); with
  authentication on and nothing configured, any Host. Refused with 400 (a websocket: closed
  before it is accepted).
- Content-Type: a POST, PUT, PATCH or DELETE with a body, or with a Content-Type, must be
  `application/json` (415 otherwise): a browser cannot send that cross-site without a CORS
  preflight, which only `TASKER_CORS_ORIGINS` passes. Bodiless POSTs (cancel, retry) stay
  bodiless.
- Origin: a state-changing request or a websocket that names an Origin must come from the
  server's own origin (the Host it was addressed to) or one of `TASKER_CORS_ORIGINS`; 403 (a
  websocket: closed before it is accepted). Clients other than browsers send no Origin.

And whatever started the app (`tasker serve`, `uvicorn --factory`, another ASGI server), open
mode answers only connections that arrived on a loopback address unless `TASKER_INSECURE` is
set (`tasker serve --insecure` sets it): the address is the socket's (`scope["server"]`), not
anything the client says.

Plain ASGI; every refusal is the REST error envelope.
"""

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth.middleware import error_response
from server.config import Settings

log = logging.getLogger("tasker.auth")

OPEN_MODE_REFUSAL: Final = (
    "authentication is off (no TASKER_JWT_SECRET / TASKER_JWT_PUBLIC_KEY): only loopback "
    "connections are served; configure a key, or set TASKER_INSECURE=true"
)
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1")
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON: Final = "application/json"
_HOST_OK: Final = "tasker.host_ok"
Refusal: TypeAlias = tuple[int, str, str, str]
"""(status, error type, error code, message) of the REST error envelope."""
POLICY_VIOLATION: Final = 1008  # a websocket closed before accept is a 403 to the client


def allowed_hosts(settings: Settings) -> list[str]:
    """The Host names the server answers: `TASKER_ALLOWED_HOSTS`, else the loopback names in
    open mode, else any (`*`)."""
    configured = [h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip()]
    if not configured:
        configured = ["*"] if settings.auth_enabled else list(LOOPBACK_HOSTS)
    # A Host header writes an IPv6 address in brackets ([::1]:8000), and is matched so.
    return [f"[{h}]" if ":" in h and not h.startswith("[") else h for h in configured]


class BrowserGuardMiddleware:
    """Host, Content-Type and Origin checks, in that order, before anything else runs."""

    def __init__(
        self,
        app: ASGIApp,
        hosts: Sequence[str],
        cors_origins: Sequence[str],
        loopback_only: bool = False,
    ) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self._warned = False
        # The library decides whether a Host matches (ports, IPv6 brackets, `*.example.com`);
        # it calls `_host_ok` for a good one and answers a bad one itself, to a `send` we drop.
        self.hosts = TrustedHostMiddleware(_host_ok, allowed_hosts=hosts, www_redirect=False)
        self.cors_origins = frozenset(o.lower() for o in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(scope, receive)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, type_, code, message = refusal
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": message})
            return
        await error_response(send, status, type_, code, message)

    async def _refusal(self, scope: Scope, receive: Receive) -> Refusal | None:
        if self.loopback_only and not is_loopback_socket(scope.get("server")):
            if not self._warned:
                self._warned = True
                log.error("refused a connection on %s: %s", scope.get("server"), OPEN_MODE_REFUSAL)
            return 403, "Forbidden", "OPEN_MODE_LOOPBACK_ONLY", OPEN_MODE_REFUSAL
        if not await self._host_allowed(scope, receive):
            return (
                400,
                "BadRequest",
                "INVALID_HOST",
                "Invalid Host header (see TASKER_ALLOWED_HOSTS)",
            )
        headers = Headers(scope=scope)
        unsafe = scope["type"] == "websocket" or scope["method"] in UNSAFE_METHODS
        if scope["type"] == "http" and unsafe and _has_body(headers):
            media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
            if media_type != JSON:
                return (415, "UnsupportedMediaType", "UNSUPPORTED_MEDIA_TYPE",
                        "Request body must be JSON (Content-Type: application/json)")  # fmt: skip
        if unsafe and not self._origin_allowed(headers):
            return (403, "Forbidden", "ORIGIN_NOT_ALLOWED",
                    "Cross-origin request refused (see TASKER_CORS_ORIGINS)")  # fmt: skip
        return None

    async def _host_allowed(self, scope: Scope, receive: Receive) -> bool:
        if self.hosts.allow_any:
            return True
        await self.hosts(scope, receive, _dropped)
        return bool(scope.pop(_HOST_OK, False))

    def _origin_allowed(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser, or a browser's same-origin GET
        origin = origin.strip().lower()
        if origin in self.cors_origins:
            return True
        parts = urlsplit(origin)
        host = headers.get("host", "").strip().lower()
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host


def middleware(settings: Settings) -> Middleware:
    """The guard for `Starlette(middleware=...)`, outside the security middleware."""
    return Middleware(
        BrowserGuardMiddleware,
        hosts=allowed_hosts(settings),
        cors_origins=settings.cors_origin_list,
        loopback_only=not settings.auth_enabled and not settings.insecure,
    )


def is_loopback_socket(server: Any) -> bool:
    """Whether a connection arrived on a loopback address. A unix socket, or an in-process
    client's made-up name, is not an IP address: local by construction."""
    if not server:
        return True
    try:
        address = ipaddress.ip_address(str(server[0]).split("%")[0])
    except ValueError:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return (
        "content-type" in headers
        or "transfer-encoding" in headers
        or (length is not None and length.strip() not in ("", "0"))
    )


async def _host_ok(scope: Scope, _receive: Receive, _send: Send) -> None:
    scope[_HOST_OK] = True


async def _dropped(_message: object) -> None:
    """Where the library's own plain-text refusal goes: ours is the error envelope."""
