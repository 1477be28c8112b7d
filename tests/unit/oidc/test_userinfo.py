"""The UserInfo endpoint (OIDC Core 5.3): JSON or a signed JWT, always for the same subject."""

from __future__ import annotations

import httpx
import pytest

from gatehouse.oidc import (
    TokenValidationError,
    UserInfoError,
    fetch_userinfo,
)
from unit.oidc.oidc_testkit import CLIENT_ID, ISSUER, NOW, FakeIdP, Keys, sign


def test_userinfo_json_returned_when_sub_matches(idp: FakeIdP, metadata) -> None:
    idp.routes["/userinfo"] = lambda r: httpx.Response(
        200, json={"sub": "user-123", "email": "a@b"}
    )
    claims = fetch_userinfo(idp.client(), metadata, "at-1", "user-123")
    assert claims["email"] == "a@b"
    assert idp.requests[-1].headers["authorization"] == "Bearer at-1"


def test_userinfo_rejected_when_sub_mismatch(idp: FakeIdP, metadata) -> None:
    idp.routes["/userinfo"] = lambda r: httpx.Response(200, json={"sub": "someone-else"})
    with pytest.raises(UserInfoError, match="userinfo_sub_mismatch"):
        fetch_userinfo(idp.client(), metadata, "at-1", "user-123")


def test_userinfo_signed_jwt_verified(keys: Keys, idp: FakeIdP, metadata, jwks) -> None:
    body = sign({"sub": "user-123", "iss": ISSUER, "aud": CLIENT_ID, "iat": NOW}, keys.rsa)
    idp.routes["/userinfo"] = lambda r: httpx.Response(
        200, text=body, headers={"content-type": "application/jwt"}
    )
    claims = fetch_userinfo(
        idp.client(), metadata, "at", "user-123", jwks=jwks, client_id=CLIENT_ID
    )
    assert claims["sub"] == "user-123"


def test_userinfo_signed_jwt_forged_rejected(keys: Keys, idp: FakeIdP, metadata, jwks) -> None:
    body = sign({"sub": "user-123", "iss": ISSUER, "aud": CLIENT_ID}, keys.rsa_forger)
    idp.routes["/userinfo"] = lambda r: httpx.Response(
        200, text=body, headers={"content-type": "application/jwt; charset=utf-8"}
    )
    with pytest.raises(TokenValidationError, match="invalid_signature"):
        fetch_userinfo(idp.client(), metadata, "at", "user-123", jwks=jwks, client_id=CLIENT_ID)


def test_userinfo_signed_jwt_wrong_audience_rejected(keys: Keys, idp: FakeIdP, metadata, jwks):
    body = sign({"sub": "user-123", "iss": ISSUER, "aud": "other"}, keys.rsa)
    idp.routes["/userinfo"] = lambda r: httpx.Response(
        200, text=body, headers={"content-type": "application/jwt"}
    )
    with pytest.raises(UserInfoError, match="audience_mismatch"):
        fetch_userinfo(idp.client(), metadata, "at", "user-123", jwks=jwks, client_id=CLIENT_ID)


def test_userinfo_401_is_userinfo_error(idp: FakeIdP, metadata) -> None:
    idp.routes["/userinfo"] = lambda r: httpx.Response(401)
    with pytest.raises(UserInfoError, match="userinfo_refused"):
        fetch_userinfo(idp.client(), metadata, "at-1", "user-123")
