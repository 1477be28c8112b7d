"""Client authentication at the token endpoint (OIDC Core 9): basic, post, none, private_key_jwt."""

from __future__ import annotations

import base64

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from joserfc.jwt import JWTClaimsRegistry

from gatehouse.oidc import (
    ClientCredentials,
    ConfigurationError,
    refresh,
)
from unit.oidc.oidc_testkit import ISSUER, FakeIdP, Keys, answer, form, ok_tokens

TOKEN_URL = f"{ISSUER}/token"


def test_client_secret_basic_encodes_special_characters(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(**ok_tokens())
    client = ClientCredentials("client:1", "p@ss w:rd%/é", "client_secret_basic")
    refresh(idp.client(), metadata, client, "rt")
    request = idp.requests[-1]
    scheme, _, value = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    decoded = base64.b64decode(value).decode()
    assert decoded == "client%3A1:p%40ss+w%3Ard%25%2F%C3%A9"
    assert "client_secret" not in form(request)


def test_client_secret_post_puts_credentials_in_body(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(**ok_tokens())
    client = ClientCredentials("client-1", "s3cret", "client_secret_post")
    refresh(idp.client(), metadata, client, "rt")
    request = idp.requests[-1]
    assert "authorization" not in request.headers
    assert form(request)["client_id"] == "client-1"
    assert form(request)["client_secret"] == "s3cret"


def test_public_client_sends_only_client_id(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(**ok_tokens())
    refresh(idp.client(), metadata, ClientCredentials("cli", auth_method="none"), "rt")
    body = form(idp.requests[-1])
    assert body["client_id"] == "cli" and "client_secret" not in body


def test_private_key_jwt_assertion_verifies(keys: Keys, idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(**ok_tokens())
    client_key = RSAKey.generate_key(2048, parameters={"kid": "client-key"})
    client = ClientCredentials("client-1", auth_method="private_key_jwt",
                               private_key_jwk=client_key.as_dict(private=True))  # fmt: skip
    refresh(idp.client(), metadata, client, "rt")
    body = form(idp.requests[-1])
    assert body["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    public = RSAKey.import_key(client_key.as_dict(private=False))
    token = jwt.decode(body["client_assertion"], public, algorithms=["RS256"])
    assert token.header["kid"] == "client-key"
    JWTClaimsRegistry(
        iss={"essential": True, "value": "client-1"},
        sub={"essential": True, "value": "client-1"},
        aud={"essential": True, "value": TOKEN_URL},
        jti={"essential": True},
        exp={"essential": True},
    ).validate(token.claims)
    assert 0 < token.claims["exp"] - token.claims["iat"] <= 60


def test_private_key_jwt_requires_a_private_key(keys: Keys) -> None:
    with pytest.raises(ConfigurationError):
        ClientCredentials("c", auth_method="private_key_jwt")
    public_only = ClientCredentials("c", auth_method="private_key_jwt",
                                    private_key_jwk=keys.rsa.as_dict(private=False))  # fmt: skip
    from gatehouse.oidc import build_client_assertion

    with pytest.raises(ConfigurationError, match="invalid_client_key"):
        build_client_assertion(public_only, TOKEN_URL)


def test_client_credentials_repr_hides_secret() -> None:
    assert "s3cret" not in repr(ClientCredentials("c", "s3cret"))
