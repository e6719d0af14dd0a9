"""Bearer tokens: who may read whose progress and publish what."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.app import json_protocol_errors
from api.auth import Forbidden, TokenVerifier, Unauthorized, mint_token
from service import cli

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


# ------------------------------------------------------------------ RS256 and ES256


def pem_pair(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    """The private and public halves of a key, as PEM text (as files and API_JWT_KEY hold them)."""
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


RSA_PRIVATE, RSA_PUBLIC = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_PRIVATE, EC_PUBLIC = pem_pair(ec.generate_private_key(ec.SECP256R1()))
OTHER_RSA_PRIVATE, _ = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
OTHER_EC_PRIVATE, _ = pem_pair(ec.generate_private_key(ec.SECP256R1()))


@pytest.mark.parametrize(
    ("algorithm", "private", "public"),
    [("RS256", RSA_PRIVATE, RSA_PUBLIC), ("ES256", EC_PRIVATE, EC_PUBLIC)],
)
def test_a_token_signed_with_the_private_key_is_accepted_with_the_public_one(
    algorithm: str, private: str, public: str
) -> None:
    token = mint_token(private, "s1", role="staff", scopes=("progress:read",), algorithm=algorithm)
    principal = TokenVerifier(public, algorithms=(algorithm,)).principal(bearer(token))
    assert (principal.subject, principal.role, principal.scopes) == (
        "s1",
        "staff",
        {"progress:read"},
    )


@pytest.mark.parametrize(
    ("algorithm", "wrong_private", "public"),
    [("RS256", OTHER_RSA_PRIVATE, RSA_PUBLIC), ("ES256", OTHER_EC_PRIVATE, EC_PUBLIC)],
)
def test_a_token_signed_with_another_private_key_is_refused(
    algorithm: str, wrong_private: str, public: str
) -> None:
    token = mint_token(wrong_private, "u1", algorithm=algorithm)
    with pytest.raises(Unauthorized, match="Signature verification failed") as refused:
        TokenVerifier(public, algorithms=(algorithm,)).principal(bearer(token))
    assert refused.value.error == "invalid_token"


def confused_token() -> str:
    """An HS256 token whose HMAC secret is the RSA public key's PEM text: anyone can make one,
    since the key is public (algorithm confusion). PyJWT refuses to sign with a PEM secret, so
    the token is put together by hand."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": "u1", "role": "staff", "scope": "progress:read", "exp": 9999999999}
    signing_input = header + b"." + b64(json.dumps(claims).encode())
    signature = hmac.new(RSA_PUBLIC.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


@pytest.mark.parametrize("algorithms", [("RS256",), ("RS256", "HS256"), ("HS256",)])
def test_an_hs256_token_signed_with_the_public_key_is_unauthorized(
    algorithms: tuple[str, ...],
) -> None:
    # With HS256 allowed next to a PEM key (a misconfiguration), PyJWT raises InvalidKeyError,
    # which is no InvalidTokenError: it must still be a 401, not a 500.
    with pytest.raises(Unauthorized) as refused:
        TokenVerifier(RSA_PUBLIC, algorithms=algorithms).principal(bearer(confused_token()))
    assert refused.value.error == "invalid_token"


def test_the_challenge_says_invalid_token_only_when_a_bearer_token_was_given() -> None:
    challenges = {}
    for header in (None, "Basic dXNlcjpwYXNz", "Bearer ", bearer("not.a.jwt")):
        with pytest.raises(Unauthorized) as refused:
            verifier.principal(header)
        challenges[header] = refused.value.challenge
    assert challenges == {
        None: "Bearer",
        "Basic dXNlcjpwYXNz": "Bearer",
        "Bearer ": 'Bearer error="invalid_request"',
        bearer("not.a.jwt"): 'Bearer error="invalid_token"',
    }


# ------------------------------------------------------------------ progress token


def run_token_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, **env: str
) -> tuple[int, str, str]:
    """``progress token`` in-process, with only the given API_JWT_* settings."""
    for name in ("API_JWT_KEY", "API_JWT_ALGORITHMS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = 0
    try:
        cli.main(["token", *args])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out.strip(), err


@pytest.mark.parametrize(
    ("algorithm", "private", "public"),
    [("RS256", RSA_PRIVATE, RSA_PUBLIC), ("ES256", EC_PRIVATE, EC_PUBLIC)],
)
def test_progress_token_signs_rs256_and_es256_with_a_private_key_file(
    algorithm: str,
    private: str,
    public: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file = tmp_path / "signing.pem"
    key_file.write_text(private)
    env = {"API_JWT_KEY": public, "API_JWT_ALGORITHMS": algorithm}
    code, token, _ = run_token_command(
        monkeypatch, capsys, "svc", "--role", "service", "--scope", "catalog:write",
        "--private-key", str(key_file), **env,
    )  # fmt: skip
    assert code == 0
    principal = TokenVerifier(public, algorithms=(algorithm,)).principal(bearer(token))
    assert (principal.subject, principal.scopes) == ("svc", {"catalog:write"})

    code, out, err = run_token_command(monkeypatch, capsys, "svc", **env)
    assert (code, out) == (1, "")
    assert "--private-key" in err
    key_file.write_text(public)  # a public key cannot sign
    code, out, err = run_token_command(
        monkeypatch, capsys, "svc", "--private-key", str(key_file), **env
    )
    assert (code, out) == (1, "")
    assert f"cannot sign a {algorithm} token" in err


def test_progress_token_signs_hs256_with_the_shared_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, token, _ = run_token_command(monkeypatch, capsys, "u1", API_JWT_KEY=KEY)
    assert code == 0
    assert verifier.principal(bearer(token)).subject == "u1"
    code, out, err = run_token_command(monkeypatch, capsys, "u1")
    assert (code, out) == (1, "")
    assert "API_JWT_KEY is not set" in err


def test_json_protocol_errors_only_with_the_aiohttp_releases_they_were_written_for() -> None:
    assert json_protocol_errors("3.14.5")
    assert json_protocol_errors("3.10.0")
    assert not json_protocol_errors("3.15.0")
    assert not json_protocol_errors("4.0.0a1")
    assert not json_protocol_errors("3.9.5")
