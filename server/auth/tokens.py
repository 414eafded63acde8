"""JWT in and out: `Verifier` turns a bearer token into a `Principal`; `mint` makes one.

Verification pins the algorithms from configuration (`server.auth.keys`), requires `exp` and
`sub`, checks `iss` and `aud` when configured, and allows a small clock leeway. Every failure
is the same `AuthenticationFailed` for the caller; its `reason` is the PyJWT exception's class
name, which never contains token text, so it is safe to log.

A verified token is remembered (by its exact text, per verifier, so per key) until it expires:
a client sends the same token on every request, and checking its signature and claims again
cost more than the rest of a small read. Only successes are kept, a remembered token is
refused from the moment its `exp` (plus the leeway) passes, and the memory is bounded by
entries and by token length.
"""

import math
import re
import time
from collections.abc import Sequence
from typing import Any

import jwt

from server.auth.keys import SigningKey, VerificationKey, verification_key
from server.config import Settings
from server.domain.errors import AuthenticationFailed
from server.domain.principal import Principal

PERMISSIONS_CLAIM = "permissions"
TIME_CLAIMS = ("exp", "nbf", "iat")
MAX_EXP = 10**12  # seconds since the epoch (year 33658): clamps absurd `exp` values before float()
_TTL = re.compile(r"(\d+)\s*([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
REMEMBERED_TOKENS = 1024
"""Verified tokens kept per verifier (when full, all are forgotten and verified anew)."""
LONGEST_REMEMBERED = 4096
"""Characters: a longer token is verified every time (it is never kept)."""


class Verifier:
    """Checks bearer tokens against one configured key."""

    def __init__(
        self,
        key: VerificationKey,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 30.0,
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.options: dict[str, Any] = {
            "require": ["exp", "sub"],
            # Not configured means not checked (DESIGN §5.3), whatever the token carries.
            "verify_aud": audience is not None,
            "verify_iss": issuer is not None,
        }
        self._verified: dict[str, Principal] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> "Verifier | None":
        """The verifier for these settings; None when no key is configured (server open)."""
        key = verification_key(settings)
        if key is None:
            return None
        return cls(
            key,
            issuer=settings.jwt_issuer or None,
            audience=settings.jwt_audience or None,
            leeway=settings.jwt_leeway_seconds,
        )

    def verify(self, token: str) -> Principal:
        """The caller a valid token names; `AuthenticationFailed` for anything else."""
        known = self._verified.get(token)
        if known is not None:
            # PyJWT's own rule: refused once `exp <= now - leeway`.
            if known.expires_at is not None and time.time() < known.expires_at + self.leeway:
                return known
            self._verified.pop(token, None)
        principal = self._check(token)
        if len(token) <= LONGEST_REMEMBERED:
            if len(self._verified) >= REMEMBERED_TOKENS:
                self._verified.clear()  # atomic, unlike an eviction loop other threads could race
            self._verified[token] = principal
        return principal

    def _check(self, token: str) -> Principal:
        """Signature and claims, every one of them, with no memory."""
        try:
            claims = jwt.decode(
                token,
                self.key.key,
                algorithms=list(self.key.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options=self.options,  # type: ignore[arg-type]
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(type(exc).__name__) from None
        except Exception as exc:  # input PyJWT does not wrap is still a refusal, not a 500
            raise AuthenticationFailed(type(exc).__name__) from None
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The `Principal` of verified claims; refuses a malformed `sub`, `permissions` or time."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthenticationFailed("InvalidSubject")
    permissions = claims.get(PERMISSIONS_CLAIM, [])
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise AuthenticationFailed("InvalidPermissionsClaim")
    for name in TIME_CLAIMS:
        # PyJWT compares int(value), so "9999999999" (a string) passes its checks; refused here
        # so that nothing downstream meets a time that is not a number.
        if name in claims and not _is_time(claims[name]):
            raise AuthenticationFailed("InvalidClaimType")
    exp: float = claims["exp"]  # required, and checked by PyJWT: in the future
    return Principal(subject, frozenset(permissions), float(min(exp, MAX_EXP)))


def _is_time(value: object) -> bool:
    """A NumericDate (RFC 7519): a finite JSON number, and not a boolean."""
    if isinstance(value, bool):
        return False
    # A huge integer is a number (clamped to MAX_EXP later); math.isfinite would overflow on it.
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def parse_ttl(text: str) -> int:
    """Seconds in `90`, `90s`, `15m`, `1h` or `7d`."""
    match = _TTL.fullmatch(text.strip().lower())
    if match is None or int(match[1]) <= 0:
        raise ValueError(f"invalid TTL {text!r}: use e.g. 90s, 15m, 1h or 7d")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


def mint(
    key: SigningKey,
    subject: str,
    permissions: Sequence[str],
    *,
    ttl_seconds: int,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """A signed token for `subject` holding `permissions`, valid for `ttl_seconds`."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": subject,
        PERMISSIONS_CLAIM: list(permissions),
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, key.key, algorithm=key.algorithm)


def issue(
    settings: Settings,
    subject: str,
    permissions: Sequence[str],
    ttl: str,
    private_key: str | None = None,
) -> str:
    """`tasker token`: a token from the configured key, checked against the server's verifier.

    Raises ValueError (a `KeyConfigError` for key problems) with a message for the operator.
    """
    from server.auth.keys import signing_key
    from server.domain.principal import is_valid_grant

    grants = [p for text in permissions for p in text.replace(",", " ").split()]
    wrong = [p for p in grants if not is_valid_grant(p)]
    if wrong:
        raise ValueError(
            f"not a permission: {', '.join(wrong)} (use tasker.<resource>:<action>, "
            "with * for either part, or * alone)"
        )
    if not subject.strip():
        raise ValueError("--sub must not be empty")
    token = mint(
        signing_key(settings, private_key),
        subject,
        grants,
        ttl_seconds=parse_ttl(ttl),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    verifier = Verifier.from_settings(settings)
    if verifier is not None:
        try:
            verifier.verify(token)
        except AuthenticationFailed:
            raise ValueError(
                "the signing key does not match the server's (TASKER_JWT_PUBLIC_KEY / "
                "TASKER_JWT_ALGORITHMS): the server would refuse this token"
            ) from None
    return token
