"""Verified tokens are remembered until they expire, and never stand in for another token.

The verifier keeps tokens it verified (by their exact text) so a client's repeated token is
not checked again on every request; these tests pin what that memory must never change.
"""

import time

import jwt
import pytest

from server.auth.tokens import LONGEST_REMEMBERED, REMEMBERED_TOKENS, Verifier
from server.config import Settings
from server.domain.errors import AuthenticationFailed
from tests.conftest import remember_secret
from tests.security.conftest import OTHER_SECRET, SECRET, AppMaker, claims


def verifier(leeway: float = 0) -> Verifier:
    found = Verifier.from_settings(Settings(jwt_secret=SECRET, jwt_leeway_seconds=leeway))
    assert found is not None
    return found


def token(permissions: list[str], **overrides: object) -> str:
    payload = claims(permissions, iss=None, aud=None, **overrides)
    return remember_secret(jwt.encode(payload, SECRET, "HS256"))


class TestMemory:
    def test_a_remembered_token_answers_as_when_first_verified(self):
        check = verifier()
        good = token(["tasker.task:show"])
        first = check.verify(good)
        assert check.verify(good) == first
        assert first.permissions == frozenset({"tasker.task:show"})

    def test_a_changed_token_is_verified_for_itself(self):
        check = verifier()
        check.verify(token(["*"], sub="admin"))
        narrow = check.verify(token(["tasker.task:show"], sub="reader"))
        assert narrow.subject == "reader" and not narrow.allows("tasker.task:create")

    def test_a_token_with_a_changed_signature_is_refused_after_the_good_one(self):
        check = verifier()
        good = token(["*"])
        check.verify(good)
        head, body, _ = good.split(".")
        forged = remember_secret(f"{head}.{body}.{jwt.encode({'x': 1}, 'k' * 40).split('.')[2]}")
        with pytest.raises(AuthenticationFailed):
            check.verify(forged)
        other_key = remember_secret(jwt.encode(claims(["*"], iss=None, aud=None), OTHER_SECRET))
        with pytest.raises(AuthenticationFailed):
            check.verify(other_key)

    def test_a_remembered_token_is_refused_once_expired(self):
        check = verifier(leeway=0)
        expires = int(time.time()) + 2
        short = token(["*"], exp=expires)
        check.verify(short)
        assert check.verify(short).subject == "alice"  # remembered
        time.sleep(max(0.0, expires - time.time()) + 0.05)
        with pytest.raises(AuthenticationFailed) as refused:
            check.verify(short)
        assert refused.value.reason == "ExpiredSignatureError"  # PyJWT's own verdict, again
        assert short not in check._verified

    def test_a_refused_token_is_not_remembered(self):
        check = verifier()
        expired = token(["*"], exp=int(time.time()) - 100, iat=int(time.time()) - 200)
        for _ in range(2):
            with pytest.raises(AuthenticationFailed):
                check.verify(expired)
        assert expired not in check._verified

    def test_memory_is_bounded(self):
        check = verifier()
        for n in range(REMEMBERED_TOKENS + 5):
            check.verify(token(["*"], sub=f"user-{n}"))
        assert 0 < len(check._verified) <= REMEMBERED_TOKENS
        long_token = token(["*"], padding="p" * LONGEST_REMEMBERED)
        assert check.verify(long_token).subject == "alice"
        assert long_token not in check._verified


class TestThroughTheApp:
    QUERY = {"query": "{ namespaces { name } }"}  # needs tasker.handler:index

    def test_a_cached_document_and_token_do_not_authorize_a_weaker_caller(self, app_with: AppMaker):
        client = app_with()
        admin = {"Authorization": f"Bearer {token(['*'])}"}
        weak = {"Authorization": f"Bearer {token(['tasker.task:show'], sub='bob')}"}
        # After one run, the token is remembered and the document known (answered without
        # the extensions, graphql_schema.known_documents): neither may help another caller.
        for _ in range(2):
            allowed = client.post("/tasker/graphql", json=self.QUERY, headers=admin)
            assert allowed.status_code == 200 and allowed.json() == {"data": {"namespaces": []}}
        refused = client.post("/tasker/graphql", json=self.QUERY, headers=weak)
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["extensions"]["code"] == "AUTHORIZATION_FAILED"
        anonymous = client.post("/tasker/graphql", json=self.QUERY)
        assert anonymous.status_code == 401
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "AUTHENTICATION_FAILED"
        assert client.get("/tasker/handlers", headers=weak).status_code == 403
        assert client.get("/tasker/handlers", headers=admin).status_code == 200
