"""The one gate every surface asks: REST operations (SSE included), GraphQL documents over
HTTP and websockets, and the observability endpoints.

Each surface states the permissions a request needs (REST: the operation table's permission;
GraphQL: the permissions its document's fields need) and calls `Gate.require`, which answers
with the caller's `Principal` or raises `AuthenticationFailed` (401) / `AuthorizationFailed`
(403). The bearer token of a connection is verified once and the outcome kept in the ASGI
scope's state, so the middleware, the REST pipeline and GraphQL never verify it twice.

Plain ASGI scopes only (no Starlette import): the gate is built with the services.
"""

import logging
import time
from collections.abc import Collection, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from server.auth.tokens import Verifier
from server.config import Settings
from server.domain import permissions as need
from server.domain.errors import AuthenticationFailed, AuthorizationFailed
from server.domain.principal import Principal

log = logging.getLogger("tasker.auth")

STATE_KEY: Final = "tasker.auth"
METRICS_PERMISSIONS: Final = frozenset({need.METRICS, need.ANALYTICS})
HEALTH_STATUS_PERMISSION: Final = need.HEALTH_STATUS
# Keys a graphql-transport-ws `connection_init` payload may carry the token under.
PAYLOAD_KEYS: Final = ("Authorization", "authorization")
PAYLOAD_TOKEN_KEY: Final = "token"


@dataclass(frozen=True, slots=True)
class Authentication:
    """What a connection's credentials proved: nothing offered, a principal, or a failure."""

    principal: Principal | None = None
    failure: str | None = None
    """Why verification failed (an exception class name: safe to log)."""


ANONYMOUS: Final = Authentication()


class Gate:
    """Authentication and authorization for one server, from its settings."""

    def __init__(self, settings: Settings) -> None:
        self.verifier = Verifier.from_settings(settings)
        self.leeway = settings.jwt_leeway_seconds
        waived: set[str] = set()
        if not settings.metrics_requires_auth:
            waived |= METRICS_PERMISSIONS
        if not settings.health_status_requires_auth:
            waived.add(HEALTH_STATUS_PERMISSION)
        self.waived: frozenset[str] = frozenset(waived)
        """Permissions nobody needs to hold, by configuration (TASKER_*_REQUIRES_AUTH)."""

    @property
    def enabled(self) -> bool:
        """False when no key is configured: the server is open (loopback only, see the CLI)."""
        return self.verifier is not None

    def authenticate(self, credentials: object) -> Authentication:
        """The outcome of an `Authorization` value (`Bearer <jwt>`); None: nothing offered."""
        if credentials is None or self.verifier is None:
            return ANONYMOUS
        if not isinstance(credentials, str):
            return Authentication(failure="MalformedCredentials")
        scheme, _, token = credentials.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return Authentication(failure="MalformedAuthorizationHeader")
        try:
            return Authentication(self.verifier.verify(token))
        except AuthenticationFailed as exc:
            return Authentication(failure=exc.reason)

    def authentication(self, scope: MutableMapping[str, Any]) -> Authentication:
        """The connection's authentication, verified on first use and kept in its state."""
        state = scope.setdefault("state", {})
        known = state.get(STATE_KEY)
        if isinstance(known, Authentication):
            return known
        auth = self.authenticate(_authorization_header(scope)) if self.enabled else ANONYMOUS
        self._remember(scope, auth)
        return auth

    def connect(
        self, scope: MutableMapping[str, Any], params: Mapping[str, Any] | None
    ) -> Principal | None:
        """A websocket's `connection_init`: its payload's token (else the handshake's
        `Authorization` header) must verify, whatever the connection goes on to run."""
        if not self.enabled:
            return None
        offered = _payload_credentials(params or {})
        if offered is not None:
            self._remember(scope, self.authenticate(offered))
        return self._principal(self.authentication(scope))

    def require(
        self, scope: MutableMapping[str, Any], permissions: Collection[str]
    ) -> Principal | None:
        """The caller, if it may use `permissions`; raises AuthenticationFailed (401) or
        AuthorizationFailed (403). No permissions at all (a GraphQL document of introspection
        only) still needs an authenticated caller; only waived permissions need none."""
        if not self.enabled:
            return None
        needed = sorted(set(permissions) - self.waived)
        if permissions and not needed:
            return None
        principal = self._principal(self.authentication(scope))
        missing = principal.missing(needed)
        if missing:
            raise AuthorizationFailed(missing)
        return principal

    def authenticated(self, scope: MutableMapping[str, Any]) -> Principal:
        """The connection's verified caller; raises AuthenticationFailed (401) otherwise."""
        return self._principal(self.authentication(scope))

    def subject(self, scope: MutableMapping[str, Any]) -> str | None:
        """The verified caller's `sub`, if any (the rate limiter's key)."""
        principal = self.authentication(scope).principal
        return principal.subject if principal else None

    def _principal(self, auth: Authentication) -> Principal:
        if auth.failure is not None:
            raise AuthenticationFailed(auth.failure)
        if auth.principal is None:
            raise AuthenticationFailed()
        # A websocket (or a long stream) may outlive its token; new operations are refused.
        if auth.principal.expired(time.time(), self.leeway):
            raise AuthenticationFailed("ExpiredSignatureError")
        return auth.principal

    def _remember(self, scope: MutableMapping[str, Any], auth: Authentication) -> None:
        state = scope.setdefault("state", {})
        state[STATE_KEY] = auth
        if auth.failure is not None:
            log.info(
                "request %s: authentication failed (%s)", state.get("request_id"), auth.failure
            )


def _authorization_header(scope: Mapping[str, Any]) -> str | None:
    values = [v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"]
    if not values:
        return None
    if len(values) > 1:
        return "ambiguous"  # two Authorization headers: refuse rather than pick one
    return bytes(values[0]).decode("latin-1")


def _payload_credentials(params: Mapping[str, Any]) -> object:
    for key in PAYLOAD_KEYS:
        if key in params:
            return params[key]
    if PAYLOAD_TOKEN_KEY in params:
        token = params[PAYLOAD_TOKEN_KEY]
        return f"Bearer {token}" if isinstance(token, str) else token
    return None
