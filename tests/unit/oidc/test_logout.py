"""Back-Channel Logout 1.0, 2.6: one test per rule."""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse.oidc import TokenValidationError, validate_logout_token
from unit.oidc.oidc_testkit import CLIENT_ID, ISSUER, NOW, Keys
from unit.oidc.oidc_testkit import sign as jwt_sign


def sign(claims: dict[str, Any], key: Any, **header: Any) -> str:
    """Logout tokens are explicitly typed (BCL 2.4)."""
    return jwt_sign(claims, key, **{"typ": "logout+jwt", **header})


EVENT = "http://schemas.openid.net/event/backchannel-logout"


def logout_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "iat": NOW,
        "exp": NOW + 120,
        "jti": "jti-1",
        "sid": "session-1",
        "sub": "user-123",
        "events": {EVENT: {}},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


class Seen:
    def __init__(self) -> None:
        self.store: dict[str, int] = {}

    def __call__(self, jti: str, expires_at: int) -> bool:
        if jti in self.store:
            return True
        self.store[jti] = expires_at
        return False


def check(token: str, metadata, jwks, seen: Seen | None = None, **kw: Any) -> dict[str, Any]:
    return validate_logout_token(
        token, metadata=metadata, jwks=jwks, client_id=CLIENT_ID, leeway_seconds=30,
        seen_jti=seen or Seen(), now=NOW, **kw,
    )  # fmt: skip


def rejected(token: str, metadata, jwks, **kw: Any) -> str:
    with pytest.raises(TokenValidationError) as info:
        check(token, metadata, jwks, **kw)
    return info.value.error


def test_logout_token_accepted(keys: Keys, metadata, jwks) -> None:
    seen = Seen()
    claims = check(sign(logout_claims(), keys.rsa, typ="logout+jwt"), metadata, jwks, seen)
    assert claims["sid"] == "session-1"
    assert seen.store == {"jti-1": NOW + 120 + 30}


def test_logout_token_rejected_when_events_missing(keys: Keys, metadata, jwks) -> None:
    assert rejected(sign(logout_claims(events=None), keys.rsa), metadata, jwks) == "missing_claim"
    other = {"https://example.com/other-event": {}}
    assert rejected(sign(logout_claims(events=other), keys.rsa), metadata, jwks) == "missing_claim"


def test_logout_token_rejected_when_event_value_not_object(keys: Keys, metadata, jwks) -> None:
    token = sign(logout_claims(events={EVENT: "yes"}), keys.rsa)
    assert rejected(token, metadata, jwks) == "invalid_claim"


def test_logout_token_rejected_when_nonce_present(keys: Keys, metadata, jwks) -> None:
    assert rejected(sign(logout_claims(nonce="n"), keys.rsa), metadata, jwks) == "nonce_present"


def test_logout_token_rejected_when_no_sid_and_no_sub(keys: Keys, metadata, jwks) -> None:
    token = sign(logout_claims(sid=None, sub=None), keys.rsa)
    assert rejected(token, metadata, jwks) == "missing_claim"


def test_logout_token_accepted_with_only_sid_or_only_sub(keys: Keys, metadata, jwks) -> None:
    assert check(sign(logout_claims(sub=None), keys.rsa), metadata, jwks)["sid"] == "session-1"
    assert check(sign(logout_claims(sid=None), keys.rsa), metadata, jwks)["sub"] == "user-123"


def test_logout_token_rejected_when_jti_replayed(keys: Keys, metadata, jwks) -> None:
    seen = Seen()
    token = sign(logout_claims(), keys.rsa)
    check(token, metadata, jwks, seen)
    with pytest.raises(TokenValidationError, match="replayed_jti"):
        check(token, metadata, jwks, seen)


def test_logout_token_rejected_when_jti_missing(keys: Keys, metadata, jwks) -> None:
    assert rejected(sign(logout_claims(jti=None), keys.rsa), metadata, jwks) == "missing_claim"


def test_logout_token_invalid_token_does_not_record_jti(keys: Keys, metadata, jwks) -> None:
    seen = Seen()
    with pytest.raises(TokenValidationError):
        check(sign(logout_claims(nonce="n"), keys.rsa), metadata, jwks, seen)
    assert seen.store == {}


def test_logout_token_rejected_when_wrong_typ(keys: Keys, metadata, jwks) -> None:
    assert rejected(sign(logout_claims(), keys.rsa, typ="JWT"), metadata, jwks) == (
        "wrong_token_type"
    )
    assert check(sign(logout_claims(), keys.rsa, typ="application/logout+jwt"), metadata, jwks)


def test_logout_token_rejected_when_wrong_aud(keys: Keys, metadata, jwks) -> None:
    token = sign(logout_claims(aud="another-client"), keys.rsa)
    assert rejected(token, metadata, jwks) == "audience_mismatch"


def test_logout_token_rejected_when_wrong_iss(keys: Keys, metadata, jwks) -> None:
    token = sign(logout_claims(iss="https://evil.example"), keys.rsa)
    assert rejected(token, metadata, jwks) == "issuer_mismatch"


def test_logout_token_rejected_when_expired(keys: Keys, metadata, jwks) -> None:
    token = sign(logout_claims(iat=NOW - 600, exp=NOW - 60), keys.rsa)
    assert rejected(token, metadata, jwks) == "token_expired"


def test_logout_token_rejected_when_iat_missing(keys: Keys, metadata, jwks) -> None:
    assert rejected(sign(logout_claims(iat=None), keys.rsa), metadata, jwks) == "missing_claim"


def test_logout_token_without_exp_is_bounded_by_iat(keys: Keys, metadata, jwks) -> None:
    seen = Seen()
    check(sign(logout_claims(exp=None), keys.rsa), metadata, jwks, seen)
    assert seen.store["jti-1"] == NOW + 600 + 30
    old = sign(logout_claims(exp=None, iat=NOW - 700, jti="j2"), keys.rsa)
    assert rejected(old, metadata, jwks) == "iat_too_old"


def test_logout_token_rejected_when_signature_forged(keys: Keys, metadata, jwks) -> None:
    token = sign(logout_claims(), keys.rsa_forger)
    assert rejected(token, metadata, jwks) == "invalid_signature"


def test_logout_token_rejected_when_alg_none(metadata, jwks) -> None:
    from unit.oidc.oidc_testkit import unsigned

    assert rejected(unsigned(logout_claims()), metadata, jwks) == "alg_not_allowed"
