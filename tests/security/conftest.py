"""Keys, token forgers and apps with authentication on (issue 5).

Keys are generated once per run. Every token and secret made here is registered with the
run-wide log guard (`tests.conftest.remember_secret`), which fails the run if any appears in
a log record.
"""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.testclient import TestClient

from server.app import create_app
from server.container import Services, build_services
from server.domain.principal import KNOWN_PERMISSIONS, Grants
from server.infra.ports import NullDispatcher
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import BACKEND, fast_settings, remember_secret

ISSUER = "https://issuer.tasker.test"
AUDIENCE = "tasker-tests"
SECRET = remember_secret("hs256-test-secret-" + "k" * 40)
OTHER_SECRET = remember_secret("hs256-other-secret-" + "q" * 40)


def pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return remember_secret(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


def pem_public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass(frozen=True)
class Keys:
    rsa: rsa.RSAPrivateKey
    other_rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey

    @property
    def rsa_public(self) -> str:
        return pem_public(self.rsa)

    @property
    def rsa_private(self) -> str:
        return pem_private(self.rsa)

    @property
    def ec_public(self) -> str:
        return pem_public(self.ec)


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )


def claims(permissions: list[str], /, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": "alice",
        "permissions": permissions,
        "iat": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A token assembled by hand (PyJWT refuses to make the malicious ones)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return remember_secret(f"{signing_input}.{_b64(sign(signing_input.encode()))}")


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens for one app (RS256 with `keys.rsa`), good and bad."""

    keys: Keys

    def valid(self, permissions: list[str], **overrides: Any) -> str:
        return remember_secret(jwt.encode(claims(permissions, **overrides), self.keys.rsa, "RS256"))

    def bad(self, case: str, permission: str) -> str:
        """A token that must be refused with 401, holding the permission it would need."""
        perms = [permission]
        if case == "expired":
            return self.valid(perms, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
        if case == "other_key":
            return remember_secret(jwt.encode(claims(perms), self.keys.other_rsa, "RS256"))
        if case == "alg_none":
            return forge({"alg": "none", "typ": "JWT"}, claims(perms), lambda _: b"")
        if case == "hs256_with_public_key":
            public = self.keys.rsa_public.encode()
            return forge(
                {"alg": "HS256", "typ": "JWT"},
                claims(perms),
                lambda data: hmac.new(public, data, hashlib.sha256).digest(),
            )
        if case == "missing_exp":
            return self.valid(perms, exp=None)
        if case == "wrong_aud":
            return self.valid(perms, aud="someone-else")
        raise AssertionError(case)


BAD_CASES = ("expired", "other_key", "alg_none", "hs256_with_public_key", "missing_exp",
             "wrong_aud")  # fmt: skip
CASES = ("no_token", *BAD_CASES, "lacking", "exact", "resource_wildcard", "action_wildcard",
         "everything")  # fmt: skip
ALLOWED = frozenset({"exact", "resource_wildcard", "action_wildcard", "everything"})

AUTHENTICATION_ERROR = {
    "error": {
        "type": "AuthenticationError",
        "message": "Invalid or expired authentication token",
        "code": "AUTHENTICATION_FAILED",
    }
}


def authorization_error(permission: str) -> dict[str, Any]:
    return {
        "error": {
            "type": "AuthorizationError",
            "message": f"Insufficient permissions for {permission}",
            "code": "AUTHORIZATION_FAILED",
        }
    }


ALSO_NEEDED = {
    # A bulk action needs the single action's permission besides `tasker.task:bulk`.
    "Mutation.bulkCancelTasks": "tasker.task:cancel",
    "Mutation.bulkRetryTasks": "tasker.task:retry",
    "Mutation.bulkRerunTasks": "tasker.task:create",
    "POST /tasker/tasks/bulk/cancel": "tasker.task:cancel",
    "POST /tasker/tasks/bulk/retry": "tasker.task:retry",
    "POST /tasker/tasks/bulk/rerun": "tasker.task:create",
}
"""Operations that check a second permission inside, granted beside the matrix's one."""


def authorization_for(
    tokens: Tokens, case: str, permission: str, also: str | None = None
) -> str | None:
    """The Authorization header value for one matrix case needing `permission` (and `also`,
    granted alongside in every case that grants `permission`)."""
    resource, action = permission.removeprefix("tasker.").split(":")
    if case == "no_token":
        return None
    if case in BAD_CASES:
        return f"Bearer {tokens.bad(case, permission)}"
    grants = {
        # Everything else there is that does not grant it (`:destroy` implies `:cancel`).
        "lacking": sorted(p for p in KNOWN_PERMISSIONS if not Grants([p]).allows(permission)),
        "exact": [permission],
        "resource_wildcard": [f"tasker.{resource}:*"],
        "action_wildcard": [f"tasker.*:{action}"],
        "everything": ["*"],
    }[case]
    if also is not None and case in ALLOWED:
        grants = [*grants, also]
    return f"Bearer {tokens.valid(grants)}"


def secured_database(request: pytest.FixtureRequest, tmp: Path) -> str:
    """A database for a module's app: its own SQLite file, or the run's PostgreSQL one."""
    if BACKEND == "sqlite":
        return f"sqlite://{tmp / 'tasker.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture(scope="module")
def tokens(keys: Keys) -> Tokens:
    return Tokens(keys)


@pytest.fixture(scope="module")
def rs256_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keys: Keys
) -> Iterator[TestClient]:
    """The full app (lifespan, embedded workers) verifying RS256 tokens, with issuer and
    audience configured and every observability endpoint behind authentication."""
    settings = fast_settings(
        secured_database(request, tmp_path_factory.mktemp("rs256")),
        jwt_public_key=keys.rsa_public,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        metrics_requires_auth=True,
        health_status_requires_auth=True,
    )
    with TestClient(create_app(settings)) as client:
        yield client


AppMaker = Callable[..., TestClient]


@pytest.fixture
def app_with() -> Iterator[AppMaker]:
    """Started apps (HS256 and the given settings) over unopened services: no database is
    needed."""
    started: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        config = fast_settings("sqlite://:memory:", jwt_secret=SECRET, **settings)
        services: Services = build_services(
            config, NullDispatcher(), registry=HandlerRegistry.load([], examples=False)
        )
        client = TestClient(create_app(services=services))
        started.append(client.__enter__())  # one event loop for all its requests, and shutdown
        return client

    yield make
    for client in started:
        client.__exit__(None, None, None)
