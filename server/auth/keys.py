"""Key material and accepted algorithms, decided from the settings and nowhere else.

Tokens never choose their algorithm: with `TASKER_JWT_SECRET` the server accepts HS256 (or the
HS* algorithms `TASKER_JWT_ALGORITHMS` lists); with `TASKER_JWT_PUBLIC_KEY` the asymmetric
algorithms listed, or the one the key's type implies (RSA: RS256, EC P-256: ES256, ...). A
configuration that could mix the two families (the HS/RS confusion attack), `none`, an HMAC
secret shorter than its hash, an RSA key under 2048 bits or an EC curve other than P-256,
P-384 or P-521 is refused with `KeyConfigError`, and the server does not start.
Messages name the setting at fault, never its value.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from server.config import Settings

PublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

# An HMAC key shorter than its hash output is guessable offline (and PyJWT only warns).
HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
# Shorter RSA keys are factorable by well-funded attackers (NIST SP 800-131A disallows them).
RSA_MIN_BITS = 2048
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_BY_CURVE = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class KeyConfigError(ValueError):
    """The JWT settings cannot work or are unsafe; the server refuses to start."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """What verifies tokens: a secret or a public key, and the algorithms it may be used with."""

    key: bytes | PublicKey
    algorithms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """What signs tokens (`tasker token`): a secret or a private key, and one algorithm."""

    key: bytes | PrivateKey
    algorithm: str


def configured_algorithms(settings: Settings) -> tuple[str, ...]:
    """`TASKER_JWT_ALGORITHMS` as a tuple (empty when unset)."""
    names = [a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()]
    if any(name.lower() == "none" for name in names):
        raise KeyConfigError("TASKER_JWT_ALGORITHMS must not contain 'none'")
    return tuple(dict.fromkeys(names))


def verification_key(settings: Settings) -> VerificationKey | None:
    """The verification key the settings configure; None when authentication is off."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    public = settings.jwt_public_key or ""
    if secret and public:
        raise KeyConfigError("configure TASKER_JWT_SECRET or TASKER_JWT_PUBLIC_KEY, not both")
    configured = configured_algorithms(settings)
    if secret:
        algorithms = configured or ("HS256",)
        return VerificationKey(_hmac_secret(secret, algorithms), algorithms)
    if public:
        key = _load_public(read_pem(public, "TASKER_JWT_PUBLIC_KEY"))
        return VerificationKey(key, _asymmetric(key, configured, "TASKER_JWT_PUBLIC_KEY"))
    if configured:
        raise KeyConfigError("TASKER_JWT_ALGORITHMS is set but no key is configured")
    return None


def signing_key(settings: Settings, private_key: str | None = None) -> SigningKey:
    """The key `tasker token` signs with: the private key given (RS256/ES256), else the secret."""
    private = private_key or (
        settings.jwt_private_key.get_secret_value() if settings.jwt_private_key else ""
    )
    configured = configured_algorithms(settings)
    if private:
        try:
            key = serialization.load_pem_private_key(
                read_pem(private, "the private key"), password=None
            )
        except (ValueError, TypeError) as exc:
            raise KeyConfigError("the private key is not an unencrypted PEM private key") from exc
        if not isinstance(key, PrivateKey):
            raise KeyConfigError("the private key must be RSA, EC, Ed25519 or Ed448")
        return SigningKey(key, _asymmetric(key.public_key(), configured, "the private key")[0])
    if settings.jwt_public_key:
        raise KeyConfigError(
            "minting a token for TASKER_JWT_PUBLIC_KEY needs the matching private key: "
            "pass --private-key FILE or set TASKER_JWT_PRIVATE_KEY"
        )
    if settings.jwt_secret:
        verifying = verification_key(settings)
        assert verifying is not None and isinstance(verifying.key, bytes)
        return SigningKey(verifying.key, verifying.algorithms[0])
    raise KeyConfigError(
        "no key configured: set TASKER_JWT_SECRET, or TASKER_JWT_PUBLIC_KEY with "
        "--private-key FILE / TASKER_JWT_PRIVATE_KEY"
    )


def read_pem(value: str, setting: str) -> bytes:
    """PEM text as given, or the contents of the file the value names."""
    if value.lstrip().startswith("-----BEGIN"):
        return value.strip().encode()
    try:
        return Path(value).expanduser().read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"{setting}: cannot read the key file ({exc.strerror})") from exc


def _hmac_secret(secret: str, algorithms: tuple[str, ...]) -> bytes:
    unknown = [a for a in algorithms if a not in HMAC_MIN_BYTES]
    if unknown:
        raise KeyConfigError(
            f"TASKER_JWT_SECRET works with HS256, HS384 or HS512 only, not {', '.join(unknown)}"
        )
    key = secret.encode()
    needed = max(HMAC_MIN_BYTES[a] for a in algorithms)
    if len(key) < needed:
        raise KeyConfigError(
            f"TASKER_JWT_SECRET must be at least {needed} bytes for {', '.join(algorithms)} "
            f"(it has {len(key)}); generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return key


def _load_public(pem: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise KeyConfigError("TASKER_JWT_PUBLIC_KEY is not a PEM public key") from exc
    if not isinstance(key, PublicKey):
        raise KeyConfigError("TASKER_JWT_PUBLIC_KEY must be an RSA, EC, Ed25519 or Ed448 key")
    return key


def _asymmetric(key: PublicKey, configured: tuple[str, ...], setting: str) -> tuple[str, ...]:
    """The algorithms this key type supports: the configured ones (checked) or its default."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < RSA_MIN_BITS:
            raise KeyConfigError(
                f"{setting}: an RSA key must have at least {RSA_MIN_BITS} bits "
                f"(this one has {key.key_size})"
            )
        supported: tuple[str, ...] = RSA_ALGORITHMS
    elif isinstance(key, ec.EllipticCurvePublicKey):
        curve = EC_BY_CURVE.get(key.curve.name)
        if curve is None:
            raise KeyConfigError(
                f"{setting}: the EC curve {key.curve.name} is not supported "
                "(use P-256, P-384 or P-521)"
            )
        supported = (curve,)
    else:
        supported = ("EdDSA",)
    if not configured:
        return supported[:1]
    wrong = [a for a in configured if a not in supported]
    if wrong:
        raise KeyConfigError(
            f"TASKER_JWT_ALGORITHMS lists {', '.join(wrong)}, which {setting} cannot verify "
            f"(it supports {', '.join(supported)})"
        )
    return configured
