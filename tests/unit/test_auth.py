"""Bearer tokens: who may read whose progress and publish what."""

from __future__ import annotations

import time

import jwt
import pytest

from api.auth import Forbidden, TokenVerifier, Unauthorized, mint_token

KEY = "test-signing-key-of-enough-length-for-hs256"
verifier = TokenVerifier(KEY)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_a_learner_reads_only_their_own_progress() -> None:
    learner = verifier.principal(bearer(mint_token(KEY, "u1")))
    learner.require_learner("u1")
    with pytest.raises(Forbidden):
        learner.require_learner("u2")
    with pytest.raises(Forbidden):
        learner.require("catalog:write")


def test_staff_and_service_tokens_see_what_they_are_scoped_to() -> None:
    staff = verifier.principal(
        bearer(mint_token(KEY, "s1", role="staff", scopes=("progress:read",)))
    )
    staff.require_learner("anyone")
    with pytest.raises(Forbidden):
        staff.require("catalog:write")
    service = verifier.principal(
        bearer(mint_token(KEY, "lms", role="service", scopes=("catalog:write", "made:up")))
    )
    service.require("catalog:write")
    assert service.scopes == {"catalog:write"}  # unknown scopes are dropped
    with pytest.raises(Forbidden):
        service.require_learner("u1")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        bearer("not.a.jwt"),
        bearer(mint_token("another-key-entirely-another-key", "u1")),
        bearer(mint_token(KEY, "u1", now=int(time.time()) - 7200)),  # expired
        bearer(mint_token(KEY, "u1", role="root")),
        bearer(jwt.encode({"sub": "u1"}, KEY, algorithm="HS256")),  # no expiry
        bearer(jwt.encode({"sub": "u1", "exp": 9999999999}, "", algorithm="none")),
    ],
)
def test_a_missing_or_bad_token_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        verifier.principal(header)
