"""ID token validation: one test per rule of OIDC Core 3.1.3.7 (and our additions), and the
ID token of a refresh response (12.2)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from joserfc.jwk import OctKey

from gatehouse.oidc import (
    IdPUnavailableError,
    IDTokenValidator,
    JWKSCache,
    ProviderMetadata,
    TokenValidationError,
    VerifiedIDTokenClaims,
    validate_id_token,
    validate_refreshed_id_token,
)
from gatehouse.oidc.id_token import ID_TOKEN_RULES
from unit.oidc.oidc_testkit import (
    CLIENT_ID,
    ISSUER,
    NOW,
    FakeClock,
    FakeIdP,
    Keys,
    b64json,
    id_claims,
    make_metadata,
    public_jwk,
    sign,
    sign_raw,
    unsigned,
)

NONCE = "n-0S6_WzA2Mj"


def check(token: str, metadata: ProviderMetadata, jwks: JWKSCache, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "metadata": metadata,
        "jwks": jwks,
        "client_id": CLIENT_ID,
        "nonce": NONCE,
        "leeway_seconds": 30,
        "now": NOW,
    }
    options.update(kwargs)
    return validate_id_token(token, **options)


def rejected(token: str, metadata: ProviderMetadata, jwks: JWKSCache, **kwargs: Any) -> str:
    with pytest.raises(TokenValidationError) as info:
        check(token, metadata, jwks, **kwargs)
    return info.value.error


def test_id_token_accepted_when_every_rule_passes(keys: Keys, metadata, jwks) -> None:
    claims = check(sign(id_claims(), keys.rsa), metadata, jwks)
    assert claims["sub"] == "user-123"


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg,attr", [("ES256", "ec"), ("EdDSA", "okp")])
def test_id_token_accepted_with_ec_and_eddsa(keys: Keys, metadata, jwks, alg, attr) -> None:
    token = sign(id_claims(), getattr(keys, attr), alg)
    assert check(token, metadata, jwks)["sub"] == "user-123"


def test_id_token_rule_table_is_not_empty() -> None:
    assert len(ID_TOKEN_RULES) >= 9


# -- (2) iss -----------------------------------------------------------------------------------


def test_id_token_rejected_when_iss_differs(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(iss=ISSUER + "/"), keys.rsa)
    assert rejected(token, metadata, jwks) == "issuer_mismatch"


def test_id_token_rejected_when_iss_missing(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(iss=None), keys.rsa)
    assert rejected(token, metadata, jwks) == "missing_claim"


# -- (3) aud -----------------------------------------------------------------------------------


def test_id_token_rejected_when_aud_missing_client_id(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(aud="another-client"), keys.rsa)
    assert rejected(token, metadata, jwks) == "audience_mismatch"


def test_id_token_rejected_when_untrusted_additional_audience(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(aud=[CLIENT_ID, "evil"], azp=CLIENT_ID), keys.rsa)
    assert rejected(token, metadata, jwks) == "untrusted_audience"


def test_id_token_accepted_with_trusted_additional_audience(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(aud=[CLIENT_ID, "api"], azp=CLIENT_ID), keys.rsa)
    assert check(token, metadata, jwks, trusted_audiences={"api"})["azp"] == CLIENT_ID


# -- (4/5) azp ---------------------------------------------------------------------------------


def test_id_token_rejected_when_azp_required_with_multiple_audiences(
    keys: Keys, metadata, jwks
) -> None:
    token = sign(id_claims(aud=[CLIENT_ID, "api"]), keys.rsa)
    assert rejected(token, metadata, jwks, trusted_audiences={"api"}) == "azp_missing"


def test_id_token_rejected_when_azp_mismatch(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(azp="api"), keys.rsa)
    assert rejected(token, metadata, jwks) == "azp_mismatch"


# -- (6-8) algorithm, key, signature -----------------------------------------------------------


def test_id_token_rejected_when_alg_none(metadata, jwks) -> None:
    assert rejected(unsigned(id_claims()), metadata, jwks) == "alg_not_allowed"


def test_id_token_rejected_when_alg_hs256_even_with_secret(metadata, jwks, idp: FakeIdP) -> None:
    secret = OctKey.generate_key(256, parameters={"kid": "rsa1"})
    idp.jwks["keys"].append(public_jwk(secret) | {"k": secret.as_dict(private=True)["k"]})
    token = sign(id_claims(), secret, "HS256")
    assert rejected(token, metadata, jwks) == "alg_not_allowed"
    assert idp.count("/jwks") == 0  # refused before any key lookup


def test_id_token_rejected_when_alg_not_in_discovery_list(keys: Keys, jwks) -> None:
    metadata = make_metadata(id_token_signing_alg_values_supported=["ES256"])
    assert rejected(sign(id_claims(), keys.rsa), metadata, jwks) == "alg_not_allowed"


def test_id_token_alg_defaults_to_rs256_when_not_advertised(keys: Keys, jwks) -> None:
    metadata = make_metadata(id_token_signing_alg_values_supported=None)
    assert check(sign(id_claims(), keys.rsa), metadata, jwks)["sub"] == "user-123"
    assert rejected(sign(id_claims(), keys.ec, "ES256"), metadata, jwks) == "alg_not_allowed"


def test_id_token_rejected_when_allowed_algs_restricts(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(), keys.rsa)
    assert rejected(token, metadata, jwks, allowed_algs={"ES256"}) == "alg_not_allowed"


def test_id_token_rejected_when_header_alg_differs_from_key_alg(
    keys: Keys, metadata, idp: FakeIdP
) -> None:
    idp.jwks["keys"] = [public_jwk(keys.rsa, alg="PS256")]
    jwks = JWKSCache(idp.client(), metadata.jwks_uri)
    assert rejected(sign(id_claims(), keys.rsa, "RS256"), metadata, jwks) == "key_alg_mismatch"


def test_id_token_rejected_when_signature_forged(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(), keys.rsa_forger)  # same kid "rsa1", another key
    assert rejected(token, metadata, jwks) == "invalid_signature"


def test_id_token_rejected_when_payload_tampered(keys: Keys, metadata, jwks) -> None:
    header, _, signature = sign(id_claims(), keys.rsa).split(".")
    token = ".".join([header, b64json(id_claims(sub="admin")), signature])
    assert rejected(token, metadata, jwks) == "invalid_signature"


def test_id_token_rejected_when_ec_key_used_for_rs256_by_kid(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(), keys.rsa, kid="ec1")
    assert rejected(token, metadata, jwks) == "invalid_signature"


def test_id_token_unknown_kid_refetches_once(keys: Keys, metadata, idp: FakeIdP) -> None:
    clock = FakeClock()
    jwks = JWKSCache(idp.client(), metadata.jwks_uri, refetch_cooldown=30, clock=clock)
    assert check(sign(id_claims(), keys.rsa), metadata, jwks)
    assert idp.count("/jwks") == 1
    unknown = sign(id_claims(), keys.rsa2)  # kid rsa2, not published
    assert rejected(unknown, metadata, jwks) == "unknown_kid"
    assert idp.count("/jwks") == 1  # still in the cooldown after the first fetch
    clock.sleep(31)
    assert rejected(unknown, metadata, jwks) == "unknown_kid"
    assert idp.count("/jwks") == 2  # one refetch
    assert rejected(sign(id_claims(), keys.rsa2, kid="rsa9"), metadata, jwks) == "unknown_kid"
    assert idp.count("/jwks") == 2  # second unknown kid within the cooldown: no refetch


def test_id_token_unknown_kid_refetch_finds_rotated_key(keys: Keys, metadata, idp: FakeIdP) -> None:
    clock = FakeClock()
    jwks = JWKSCache(idp.client(), metadata.jwks_uri, clock=clock)
    assert check(sign(id_claims(), keys.rsa), metadata, jwks)
    idp.jwks["keys"].append(public_jwk(keys.rsa2))
    clock.sleep(31)
    assert check(sign(id_claims(), keys.rsa2), metadata, jwks)["sub"] == "user-123"
    assert idp.count("/jwks") == 2


def test_id_token_single_key_without_kid_used(keys: Keys, metadata, idp: FakeIdP) -> None:
    jwk = public_jwk(keys.rsa)
    del jwk["kid"]
    idp.jwks["keys"] = [jwk]
    jwks = JWKSCache(idp.client(), metadata.jwks_uri)
    assert check(sign(id_claims(), keys.rsa, kid=None), metadata, jwks)  # token without kid
    assert check(sign(id_claims(), keys.rsa), metadata, jwks)  # token with a kid


def test_id_token_without_kid_rejected_when_several_keys(keys: Keys, metadata, jwks) -> None:
    assert rejected(sign(id_claims(), keys.rsa, kid=None), metadata, jwks) == "kid_required"


def test_id_token_unknown_kty_ignored(keys: Keys, metadata, idp: FakeIdP) -> None:
    idp.jwks["keys"] = [
        {"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq", "pub": "AAAA"},
        {"kty": "RSA", "use": "enc", "kid": "rsa1", "n": "AQAB", "e": "AQAB"},
        public_jwk(keys.rsa),
    ]
    jwks = JWKSCache(idp.client(), metadata.jwks_uri)
    assert check(sign(id_claims(), keys.rsa), metadata, jwks)["sub"] == "user-123"


def test_id_token_rejected_when_idp_keys_unavailable(keys: Keys, metadata, idp: FakeIdP) -> None:
    idp.routes["/jwks"] = lambda r: __import__("httpx").Response(503)
    jwks = JWKSCache(idp.client(), metadata.jwks_uri)
    with pytest.raises(IdPUnavailableError):
        check(sign(id_claims(), keys.rsa), metadata, jwks)


# -- (9) exp -----------------------------------------------------------------------------------


def test_id_token_rejected_when_expired(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(exp=NOW - 31), keys.rsa)
    assert rejected(token, metadata, jwks) == "token_expired"


def test_id_token_exp_within_leeway_accepted(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(exp=NOW - 29), keys.rsa)
    assert check(token, metadata, jwks)["sub"] == "user-123"


def test_id_token_rejected_when_exp_missing(keys: Keys, metadata, jwks) -> None:
    assert rejected(sign(id_claims(exp=None), keys.rsa), metadata, jwks) == "missing_claim"


# -- (10) iat ----------------------------------------------------------------------------------


def test_id_token_rejected_when_iat_in_future(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(iat=NOW + 60), keys.rsa)
    assert rejected(token, metadata, jwks) == "iat_in_future"


def test_id_token_rejected_when_iat_missing(keys: Keys, metadata, jwks) -> None:
    assert rejected(sign(id_claims(iat=None), keys.rsa), metadata, jwks) == "missing_claim"


def test_id_token_rejected_when_iat_too_old(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(iat=NOW - 400), keys.rsa)
    assert check(token, metadata, jwks)  # no age limit by default
    assert rejected(token, metadata, jwks, max_iat_age_seconds=300) == "iat_too_old"


def test_id_token_rejected_when_nbf_in_future(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(nbf=NOW + 120), keys.rsa)
    assert rejected(token, metadata, jwks) == "token_not_yet_valid"


# -- (11) nonce --------------------------------------------------------------------------------


def test_id_token_rejected_when_nonce_mismatch(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(nonce="other"), keys.rsa)
    assert rejected(token, metadata, jwks) == "bad_nonce"


def test_id_token_rejected_when_nonce_missing(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(nonce=None), keys.rsa)
    assert rejected(token, metadata, jwks) == "bad_nonce"


def test_id_token_without_nonce_accepted_when_none_sent(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(nonce=None), keys.rsa)
    assert check(token, metadata, jwks, nonce=None)["sub"] == "user-123"


# -- (13) auth_time / max_age ------------------------------------------------------------------


def test_id_token_rejected_when_auth_time_missing_with_max_age(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(), keys.rsa)
    assert rejected(token, metadata, jwks, max_age_seconds=600) == "missing_claim"


def test_id_token_rejected_when_auth_time_older_than_max_age(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(auth_time=NOW - 1000), keys.rsa)
    assert rejected(token, metadata, jwks, max_age_seconds=600) == "auth_time_too_old"
    fresh = sign(id_claims(auth_time=NOW - 100), keys.rsa)
    assert check(fresh, metadata, jwks, max_age_seconds=600)["auth_time"] == NOW - 100


# -- at_hash -----------------------------------------------------------------------------------


def _at_hash(access_token: str, hash_name: str = "sha256") -> str:
    digest = hashlib.new(hash_name, access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def test_id_token_at_hash_matching_accepted(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(at_hash=_at_hash("access-xyz")), keys.rsa)
    assert check(token, metadata, jwks, access_token="access-xyz")


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_id_token_at_hash_eddsa_uses_sha512(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(at_hash=_at_hash("access-xyz", "sha512")), keys.okp, "EdDSA")
    assert check(token, metadata, jwks, access_token="access-xyz")


def test_id_token_rejected_when_at_hash_mismatch(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(at_hash=_at_hash("another")), keys.rsa)
    assert rejected(token, metadata, jwks, access_token="access-xyz") == "at_hash_mismatch"


def test_id_token_at_hash_absent_accepted(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(), keys.rsa)
    assert check(token, metadata, jwks, access_token="access-xyz")


# -- sub ---------------------------------------------------------------------------------------


def test_id_token_rejected_when_sub_missing(keys: Keys, metadata, jwks) -> None:
    assert rejected(sign(id_claims(sub=None), keys.rsa), metadata, jwks) == "missing_claim"
    assert rejected(sign(id_claims(sub=""), keys.rsa), metadata, jwks) == "missing_claim"
    assert rejected(sign(id_claims(sub=42), keys.rsa), metadata, jwks) == "invalid_claim"


# -- structure and headers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc.def",
        "!!!.e30.c2ln",
        b64json({"alg": "RS256"}).encode().hex() + "." + b64json({}) + ".c2ln",
        "bm90IGpzb24." + b64json({}) + ".c2ln",
        b64json(["RS256"]) + "." + b64json({}) + ".c2ln",
        b64json({"alg": "RS256"}) + ".bm90IGpzb24.c2ln",
        b64json({"alg": "RS256"}) + "." + b64json({}) + ".",
    ],
)
def test_id_token_rejected_when_malformed(metadata, jwks, idp: FakeIdP, token: str) -> None:
    assert rejected(token, metadata, jwks) == "malformed_token"
    assert idp.count("/jwks") == 0


def test_id_token_rejected_when_jwe_refused(metadata, jwks) -> None:
    jwe = b64json({"alg": "RSA-OAEP", "enc": "A256GCM"}) + ".a.b.c.d"
    assert rejected(jwe, metadata, jwks) == "jwe_refused"


def test_id_token_rejected_when_crit_unknown(keys: Keys, metadata, jwks) -> None:
    header = {"alg": "RS256", "kid": "rsa1", "crit": ["urn:example:ext"], "urn:example:ext": 1}
    token = sign_raw(header, id_claims(), keys.rsa)
    assert rejected(token, metadata, jwks) == "crit_unsupported"


def test_id_token_rejected_when_logout_token_presented(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(nonce=None), keys.rsa, typ="logout+jwt")
    assert rejected(token, metadata, jwks, nonce=None) == "wrong_token_type"
    events = {"http://schemas.openid.net/event/backchannel-logout": {}}
    token = sign(id_claims(nonce=None, events=events), keys.rsa)
    assert rejected(token, metadata, jwks, nonce=None) == "wrong_token_type"


def test_id_token_validator_uses_its_clock(keys: Keys, metadata, jwks) -> None:
    validator = IDTokenValidator(
        metadata=metadata, jwks=jwks, client_id=CLIENT_ID, leeway_seconds=0, clock=lambda: NOW
    )
    assert validator.validate(sign(id_claims(), keys.rsa), nonce=NONCE)["sub"] == "user-123"
    late = IDTokenValidator(
        metadata=metadata, jwks=jwks, client_id=CLIENT_ID, leeway_seconds=0,
        clock=lambda: NOW + 301,
    )  # fmt: skip
    with pytest.raises(TokenValidationError, match="token_expired"):
        late.validate(sign(id_claims(), keys.rsa), nonce=NONCE)


def test_id_token_error_never_contains_the_token(keys: Keys, metadata, jwks) -> None:
    token = sign(id_claims(nonce="secret-nonce-value"), keys.rsa)
    with pytest.raises(TokenValidationError) as info:
        check(token, metadata, jwks)
    assert token not in str(info.value)
    assert "secret-nonce-value" not in str(info.value)


# -- (12.2) the ID token of a refresh response, compared with the original ----------------------


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
