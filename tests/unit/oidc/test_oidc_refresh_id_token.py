"""OIDC Core 12.2: the ID token of a refresh response, compared with the original."""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse.oidc import (
    TokenValidationError,
    VerifiedIDTokenClaims,
    validate_id_token,
    validate_refreshed_id_token,
)
from unit.oidc.oidc_testkit import CLIENT_ID, NOW, Keys, id_claims, sign


@pytest.fixture
def previous(keys: Keys, metadata, jwks) -> VerifiedIDTokenClaims:
    token = sign(id_claims(auth_time=NOW - 10), keys.rsa)
    return validate_id_token(
        token, metadata=metadata, jwks=jwks, client_id=CLIENT_ID, nonce="n-0S6_WzA2Mj",
        leeway_seconds=30, now=NOW,
    )  # fmt: skip


def refreshed(token: str | None, previous, metadata, jwks, **kw: Any):
    return validate_refreshed_id_token(
        token, previous, metadata=metadata, jwks=jwks, client_id=CLIENT_ID,
        leeway_seconds=30, now=NOW + 3600, **kw,
    )  # fmt: skip


def later(**overrides: Any) -> dict[str, Any]:
    base = {"iat": NOW + 3600, "exp": NOW + 3900, "nonce": None, "auth_time": NOW - 10}
    base.update(overrides)
    return id_claims(**base)


def test_refreshed_id_token_accepted_with_same_identity(keys: Keys, previous, metadata, jwks):
    claims = refreshed(sign(later(), keys.rsa), previous, metadata, jwks)
    assert claims is not None and claims["sub"] == previous["sub"]


def test_refreshed_id_token_missing_accepted_without_new_claims(previous, metadata, jwks):
    assert refreshed(None, previous, metadata, jwks) is None


def test_refreshed_id_token_rejected_when_sub_differs(keys: Keys, previous, metadata, jwks):
    with pytest.raises(TokenValidationError, match="sub_mismatch"):
        refreshed(sign(later(sub="someone-else"), keys.rsa), previous, metadata, jwks)


def test_refreshed_id_token_rejected_when_iss_differs(keys: Keys, previous, metadata, jwks):
    with pytest.raises(TokenValidationError, match="issuer_mismatch"):
        refreshed(sign(later(iss="https://other.example"), keys.rsa), previous, metadata, jwks)


def test_refreshed_id_token_rejected_when_aud_differs(keys: Keys, previous, metadata, jwks):
    token = sign(later(aud=[CLIENT_ID, "api"], azp=CLIENT_ID), keys.rsa)
    with pytest.raises(TokenValidationError, match="audience_mismatch"):
        refreshed(token, previous, metadata, jwks, trusted_audiences={"api"})


def test_refreshed_id_token_rejected_when_nonce_differs(keys: Keys, previous, metadata, jwks):
    with pytest.raises(TokenValidationError, match="bad_nonce"):
        refreshed(sign(later(nonce="replayed"), keys.rsa), previous, metadata, jwks)
    same = refreshed(sign(later(nonce="n-0S6_WzA2Mj"), keys.rsa), previous, metadata, jwks)
    assert same is not None


def test_refreshed_id_token_rejected_when_auth_time_differs(keys: Keys, previous, metadata, jwks):
    with pytest.raises(TokenValidationError, match="auth_time_mismatch"):
        refreshed(sign(later(auth_time=NOW + 3500), keys.rsa), previous, metadata, jwks)


def test_refreshed_id_token_rejected_when_iat_missing(keys: Keys, previous, metadata, jwks):
    with pytest.raises(TokenValidationError, match="missing_claim"):
        refreshed(sign(later(iat=None), keys.rsa), previous, metadata, jwks)
