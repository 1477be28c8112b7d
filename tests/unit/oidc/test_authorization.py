"""Authorization request / response (OIDC Core 3.1.2, RFC 9207)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from gatehouse.oidc import (
    AuthorizationResponseError,
    ConfigurationError,
    FlowSecrets,
    IdPErrorResponse,
    build_authorization_request,
    challenge_s256,
    parse_authorization_response,
)
from unit.oidc.oidc_testkit import ISSUER, make_metadata

REDIRECT = "https://gatehouse.example.com/auth/oidc/callback"


def test_authorization_request_carries_state_nonce_pkce() -> None:
    metadata = make_metadata(authorization_endpoint=f"{ISSUER}/authorize?tenant=acme")
    url, flow = build_authorization_request(
        metadata, "client-1", REDIRECT, ["profile", "email"], prompt="login", max_age=600,
        extra_params={"login_hint": "ada@example.com"},
    )  # fmt: skip
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{ISSUER}/authorize?tenant=acme&")
    assert query["response_type"] == "code"
    assert query["scope"] == "openid profile email"
    assert query["state"] == flow.state and query["nonce"] == flow.nonce
    assert query["code_challenge"] == challenge_s256(flow.code_verifier)
    assert query["code_challenge_method"] == "S256"
    assert query["prompt"] == "login" and query["max_age"] == "600"
    assert query["login_hint"] == "ada@example.com"
    assert len(flow.state) >= 43 and len(flow.nonce) >= 43  # 256 bits, base64url
    assert flow.redirect_uri == REDIRECT and flow.issuer == ISSUER and flow.max_age == 600
    assert FlowSecrets.from_dict(flow.as_dict()) == flow


def test_authorization_request_refuses_reserved_extra_params() -> None:
    with pytest.raises(ConfigurationError, match="reserved_parameter"):
        build_authorization_request(
            make_metadata(), "c", REDIRECT, ["openid"], extra_params={"state": "fixed"}
        )


def test_authorization_response_returns_code() -> None:
    params = {"code": "abc", "state": "s1", "iss": ISSUER}
    assert (
        parse_authorization_response(params, expected_state="s1", metadata=make_metadata()) == "abc"
    )


def test_authorization_response_rejected_when_state_mismatch() -> None:
    with pytest.raises(AuthorizationResponseError) as info:
        parse_authorization_response(
            {"code": "abc", "state": "s2"}, expected_state="s1", metadata=make_metadata()
        )
    assert info.value.error == "state_mismatch"
    with pytest.raises(AuthorizationResponseError, match="state_mismatch"):
        parse_authorization_response({"code": "abc"}, expected_state="s1", metadata=make_metadata())


def test_authorization_response_rejected_when_iss_mismatch() -> None:
    params = {"code": "abc", "state": "s1", "iss": ISSUER + "/"}
    with pytest.raises(AuthorizationResponseError, match="iss_mismatch"):
        parse_authorization_response(params, expected_state="s1", metadata=make_metadata())


def test_authorization_response_rejected_when_iss_missing_and_advertised() -> None:
    metadata = make_metadata(authorization_response_iss_parameter_supported=True)
    with pytest.raises(AuthorizationResponseError, match="iss_missing"):
        parse_authorization_response({"code": "abc", "state": "s1"}, expected_state="s1",
                                     metadata=metadata)  # fmt: skip


def test_error_response_without_advertised_iss_is_an_unverified_idp_error_never_a_code() -> None:
    metadata = make_metadata(authorization_response_iss_parameter_supported=True)
    cancelled = {"error": "access_denied", "state": "s1"}
    with pytest.raises(IdPErrorResponse) as info:
        parse_authorization_response(cancelled, expected_state="s1", metadata=metadata)
    assert info.value.idp_error == "access_denied" and not info.value.issuer_verified
    # the state is still checked first
    with pytest.raises(AuthorizationResponseError, match="state_mismatch"):
        parse_authorization_response(
            dict(cancelled, state="forged"), expected_state="s1", metadata=metadata
        )
    # an error that also carries a code is no plain error response: iss_missing as before
    with pytest.raises(AuthorizationResponseError, match="iss_missing"):
        parse_authorization_response(
            dict(cancelled, code="abc"), expected_state="s1", metadata=metadata
        )


def test_authorization_response_iss_absent_accepted_when_not_advertised() -> None:
    metadata = make_metadata(authorization_response_iss_parameter_supported=False)
    code = parse_authorization_response(
        {"code": "abc", "state": "s1"}, expected_state="s1", metadata=metadata
    )
    assert code == "abc"


def test_authorization_response_error_param_raised_after_state_check() -> None:
    denied = {"error": "access_denied", "error_description": "User said no", "state": "s1"}
    with pytest.raises(IdPErrorResponse) as info:
        parse_authorization_response(denied, expected_state="s1", metadata=make_metadata())
    assert info.value.idp_error == "access_denied" and info.value.issuer_verified
    assert info.value.idp_error_description == "User said no"
    forged = dict(denied, state="attacker")
    with pytest.raises(AuthorizationResponseError) as info2:
        parse_authorization_response(forged, expected_state="s1", metadata=make_metadata())
    assert info2.value.error == "state_mismatch"
    assert not isinstance(info2.value, IdPErrorResponse)


def test_authorization_response_error_param_raised_after_iss_check() -> None:
    params = {"error": "access_denied", "state": "s1", "iss": "https://evil.example"}
    with pytest.raises(AuthorizationResponseError, match="iss_mismatch"):
        parse_authorization_response(params, expected_state="s1", metadata=make_metadata())


def test_authorization_response_rejected_when_code_missing() -> None:
    with pytest.raises(AuthorizationResponseError, match="missing_code"):
        parse_authorization_response({"state": "s1"}, expected_state="s1", metadata=make_metadata())
