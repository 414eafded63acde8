"""The verifier, the key settings and the wildcard grammar, without a server."""

import hashlib
import hmac
import time
import warnings

import jwt
import pytest
from click.testing import CliRunner

from server.auth.keys import KeyConfigError, signing_key, verification_key
from server.auth.tokens import Verifier, issue, mint, parse_ttl
from server.cli import main
from server.config import Settings
from server.domain.errors import AuthenticationFailed
from server.domain.principal import KNOWN_PERMISSIONS, Principal, is_valid_grant
from tests.conftest import remember_secret
from tests.security.conftest import AUDIENCE, ISSUER, OTHER_SECRET, SECRET, Keys, claims, forge


def verifier(**settings: object) -> Verifier:
    found = Verifier.from_settings(Settings(**settings))  # type: ignore[arg-type]
    assert found is not None
    return found


class TestGrants:
    @pytest.mark.parametrize(
        ("grants", "permission", "allowed"),
        [
            (["tasker.task:show"], "tasker.task:show", True),
            (["tasker.task:show"], "tasker.task:index", False),
            (["tasker.task:*"], "tasker.task:destroy", True),
            (["tasker.task:*"], "tasker.workflow_step:show", False),
            (["tasker.*:index"], "tasker.metrics:index", True),
            (["tasker.*:index"], "tasker.task:show", False),
            (["tasker.*:*"], "tasker.health_status:index", True),
            (["*"], "tasker.analytics:index", True),
            (["tasker.task:sh*"], "tasker.task:show", False),
            (
                ["TASKER.TASK:SHOW", "tasker.task: show", "tasker.tâsk:show"],
                "tasker.task:show",
                False,
            ),
            (["tasker.*"], "tasker.task:show", False),
        ],
    )
    def test_wildcards(self, grants: list[str], permission: str, allowed: bool):
        assert Principal("p", frozenset(grants)).allows(permission) is allowed

    def test_a_required_wildcard_is_never_granted_by_accident(self):
        assert not Principal("p", frozenset(["tasker.task:show"])).allows("tasker.task:*")
        assert Principal("p", frozenset(["*"])).allows("tasker.task:*")

    def test_ten_thousand_permissions_check_in_constant_time(self):
        grants = frozenset(f"tasker.res{i}:act{i}" for i in range(10_000)) | {"tasker.task:show"}
        principal = Principal("p", grants)
        started = time.perf_counter()
        for _ in range(1000):
            assert principal.allows("tasker.task:show")
            assert not principal.allows("tasker.task:index")
        assert time.perf_counter() - started < 0.5

    def test_the_grammar_knows_every_resource_and_action(self):
        assert all(is_valid_grant(p) for p in KNOWN_PERMISSIONS)
        assert is_valid_grant("*") and is_valid_grant("tasker.*:retry")
        assert not is_valid_grant("tasker.task:fly") and not is_valid_grant("tasker.ship:show")


class TestVerifier:
    def test_a_valid_token_names_its_caller(self):
        token = jwt.encode(claims(["tasker.task:show"]), SECRET, "HS256")
        principal = verifier(jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE).verify(
            remember_secret(token)
        )
        assert principal.subject == "alice"
        assert principal.allows("tasker.task:show")

    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            ({"exp": None}, "MissingRequiredClaimError"),
            ({"sub": None}, "MissingRequiredClaimError"),
            ({"exp": int(time.time()) - 120}, "ExpiredSignatureError"),
            ({"aud": "other"}, "InvalidAudienceError"),
            ({"iss": "https://evil.test"}, "InvalidIssuerError"),
            ({"aud": None}, "MissingRequiredClaimError"),
            ({"permissions": "tasker.task:show"}, "InvalidPermissionsClaim"),
            ({"permissions": [1, 2]}, "InvalidPermissionsClaim"),
            ({"sub": ""}, "InvalidSubject"),
        ],
    )
    def test_refusals(self, overrides: dict[str, object], reason: str):
        token = remember_secret(jwt.encode(claims(["*"], **overrides), SECRET, "HS256"))
        with pytest.raises(AuthenticationFailed) as refused:
            verifier(jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE).verify(token)
        assert refused.value.reason == reason
        assert refused.value.message == "Invalid or expired authentication token"
        assert token not in str(refused.value)

    def test_a_little_clock_skew_is_tolerated(self):
        token = jwt.encode(claims(["*"], exp=int(time.time()) - 10), SECRET, "HS256")
        assert verifier(jwt_secret=SECRET).verify(remember_secret(token)).subject == "alice"

    def test_iss_and_aud_are_not_checked_unless_configured(self):
        token = jwt.encode(claims(["*"], aud="anyone", iss="anywhere"), SECRET, "HS256")
        assert verifier(jwt_secret=SECRET).verify(remember_secret(token)).subject == "alice"

    def test_another_secret_and_alg_none_are_refused(self):
        other = remember_secret(jwt.encode(claims(["*"]), OTHER_SECRET, "HS256"))
        none = forge({"alg": "none"}, claims(["*"]), lambda _: b"")
        for token in (other, none):
            with pytest.raises(AuthenticationFailed):
                verifier(jwt_secret=SECRET).verify(token)

    def test_es256_keys_are_inferred_and_rs256_tokens_refused(self, keys: Keys):
        es = verifier(jwt_public_key=keys.ec_public)
        assert es.key.algorithms == ("ES256",)
        assert es.verify(remember_secret(jwt.encode(claims(["*"]), keys.ec, "ES256"))).subject
        with pytest.raises(AuthenticationFailed):
            es.verify(remember_secret(jwt.encode(claims(["*"]), keys.rsa, "RS256")))

    def test_unicode_claims_are_just_strings(self):
        token = jwt.encode(claims(["tasker.tâche:show", "☃"], sub="zoë ☃"), SECRET, "HS256")
        principal = verifier(jwt_secret=SECRET).verify(remember_secret(token))
        assert principal.subject == "zoë ☃" and not principal.allows("tasker.task:show")

    def test_absurd_numbers_in_claims_are_no_crash(self):
        def hs256(data: bytes) -> bytes:
            return hmac.new(SECRET.encode(), data, hashlib.sha256).digest()

        check = verifier(jwt_secret=SECRET)
        for exp in (float("inf"), float("nan"), "soon", [1]):
            with pytest.raises(AuthenticationFailed):
                check.verify(forge({"alg": "HS256"}, {"sub": "a", "exp": exp}, hs256))
        far = check.verify(forge({"alg": "HS256"}, {"sub": "a", "exp": 10**400}, hs256))
        assert far.expires_at is not None and not far.expired(time.time())

    @pytest.mark.parametrize("garbage", ["", "a.b.c", "....", "\x00\x01", "é" * 50, "eyJ." * 3])
    def test_garbage_is_a_refusal_not_a_crash(self, garbage: str):
        with pytest.raises(AuthenticationFailed):
            verifier(jwt_secret=SECRET).verify(garbage)


class TestKeySettings:
    def test_no_key_means_open(self):
        assert verification_key(Settings()) is None

    @pytest.mark.parametrize(
        ("settings", "message"),
        [
            ({"jwt_secret": "too-short"}, "at least 32 bytes"),
            ({"jwt_secret": "x" * 40, "jwt_algorithms": "HS512"}, "at least 64 bytes"),
            ({"jwt_secret": "x" * 40, "jwt_algorithms": "RS256"}, "HS256, HS384 or HS512"),
            ({"jwt_secret": "x" * 40, "jwt_algorithms": "HS256,none"}, "'none'"),
            ({"jwt_public_key": "/nonexistent.pem"}, "cannot read"),
            ({"jwt_public_key": "-----BEGIN PUBLIC KEY-----\nnope"}, "not a PEM public key"),
            ({"jwt_algorithms": "RS256"}, "no key is configured"),
        ],
    )
    def test_unusable_settings_refuse_to_start(self, settings: dict[str, str], message: str):
        with pytest.raises(KeyConfigError, match=message) as refused:
            verification_key(Settings(**settings))  # type: ignore[arg-type]
        assert "too-short" not in str(refused.value)

    def test_a_public_key_never_accepts_hmac(self, keys: Keys):
        with pytest.raises(KeyConfigError, match="cannot verify"):
            verification_key(Settings(jwt_public_key=keys.rsa_public, jwt_algorithms="HS256"))
        with pytest.raises(KeyConfigError, match="not both"):
            verification_key(Settings(jwt_public_key=keys.rsa_public, jwt_secret="x" * 40))

    def test_a_short_secret_stops_the_app(self):
        from server.app import create_app

        with pytest.raises(KeyConfigError, match="at least 32 bytes"):
            create_app(Settings(jwt_secret="short", database_url="sqlite://:memory:"))

    def test_secrets_stay_out_of_the_settings_repr(self):
        assert SECRET not in repr(Settings(jwt_secret=SECRET))

    def test_a_32_byte_secret_raises_no_pyjwt_warning(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            key = signing_key(Settings(jwt_secret="k" * 32))
            token = mint(key, "bob", ["*"], ttl_seconds=60)
            assert verifier(jwt_secret="k" * 32).verify(remember_secret(token)).subject == "bob"


class TestMinting:
    @pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900),
                                                   ("1h", 3600), ("7d", 604800)])  # fmt: skip
    def test_ttl(self, text: str, seconds: int):
        assert parse_ttl(text) == seconds

    @pytest.mark.parametrize("text", ["", "0", "-1h", "1y", "h"])
    def test_bad_ttl(self, text: str):
        with pytest.raises(ValueError, match="invalid TTL"):
            parse_ttl(text)

    def test_issue_with_the_secret(self):
        settings = Settings(jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
        token = remember_secret(issue(settings, "ci", ["tasker.task:*", "tasker.*:index"], "1h"))
        principal = verifier(jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE).verify(
            token
        )
        assert principal.allows("tasker.task:retry") and principal.allows("tasker.handler:index")
        assert principal.expires_at is not None
        assert 3590 < principal.expires_at - time.time() <= 3600

    def test_issue_refuses_nonsense_permissions(self):
        with pytest.raises(ValueError, match=r"not a permission: tasker\.tasks:show"):
            issue(Settings(jwt_secret=SECRET), "ci", ["tasker.tasks:show"], "1h")

    def test_rs256_needs_the_matching_private_key(self, keys: Keys, tmp_path):
        settings = Settings(jwt_public_key=keys.rsa_public)
        with pytest.raises(KeyConfigError, match="needs the matching private key"):
            issue(settings, "ci", ["*"], "1h")
        right = tmp_path / "right.pem"
        right.write_text(keys.rsa_private)
        token = remember_secret(issue(settings, "ci", ["*"], "1h", str(right)))
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        with pytest.raises(ValueError, match="does not match"):
            issue(Settings(jwt_public_key=keys.ec_public), "ci", ["*"], "1h", str(right))

    def test_the_cli_command(self, keys: Keys, tmp_path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("TASKER_JWT_SECRET", SECRET)
        args = ["token", "--sub", "ops", "--permission", "tasker.task:show", "--ttl", "15m"]
        result = CliRunner().invoke(main, [*args, "--permission", "tasker.*:index"])
        assert result.exit_code == 0, result.output
        principal = verifier(jwt_secret=SECRET).verify(remember_secret(result.output.strip()))
        assert principal.subject == "ops" and principal.allows("tasker.metrics:index")
        monkeypatch.delenv("TASKER_JWT_SECRET")
        monkeypatch.setenv("TASKER_JWT_PUBLIC_KEY", keys.rsa_public)
        monkeypatch.setenv("TASKER_JWT_PRIVATE_KEY", keys.rsa_private)
        result = CliRunner().invoke(main, ["token", "--sub", "ops", "--permission", "*"])
        assert result.exit_code == 0, result.output
        monkeypatch.delenv("TASKER_JWT_PRIVATE_KEY")
        refused = CliRunner().invoke(main, ["token", "--sub", "ops"])
        assert refused.exit_code == 1 and "--private-key" in refused.output
