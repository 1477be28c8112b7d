"""Token endpoint (OIDC Core 3.1.3, RFC 6749): code exchange, refresh, revocation."""

from __future__ import annotations

import httpx
import pytest

from gatehouse.oidc import (
    ClientCredentials,
    IdPUnavailableError,
    RefreshRefusedError,
    TokenEndpointError,
    exchange_code,
    refresh,
    revoke,
)
from unit.oidc.oidc_testkit import FakeIdP, answer, form, ok_tokens

SECRET_CLIENT = ClientCredentials("client:1", "p@ss w:rd%/é", "client_secret_basic")


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER"])
def test_token_type_case_insensitive(idp: FakeIdP, metadata, token_type: str) -> None:
    idp.routes["/token"] = answer(**ok_tokens(token_type=token_type))
    tokens = exchange_code(idp.client(), metadata, SECRET_CLIENT, "code", "https://rp/cb", "v" * 43)
    assert tokens.token_type == "Bearer"
    assert tokens.expires_in == 300 and tokens.refresh_token == "rt-1"


def test_token_type_other_than_bearer_refused(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(**ok_tokens(token_type="DPoP"))
    with pytest.raises(TokenEndpointError, match="unsupported_token_type"):
        exchange_code(idp.client(), metadata, SECRET_CLIENT, "code", "https://rp/cb", "v" * 43)


def test_code_exchange_sends_code_verifier_and_redirect_uri(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(**ok_tokens())
    exchange_code(idp.client(), metadata, SECRET_CLIENT, "the-code", "https://rp/cb", "v" * 43)
    body = form(idp.requests[-1])
    assert body == {"grant_type": "authorization_code", "code": "the-code",
                    "redirect_uri": "https://rp/cb", "code_verifier": "v" * 43}  # fmt: skip


def test_code_exchange_without_id_token_refused(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(**ok_tokens(id_token=None))
    with pytest.raises(TokenEndpointError, match="missing_id_token"):
        exchange_code(idp.client(), metadata, SECRET_CLIENT, "c", "https://rp/cb", "v" * 43)


def test_refresh_without_new_refresh_token(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(**ok_tokens(refresh_token=None, id_token=None))
    tokens = refresh(idp.client(), metadata, SECRET_CLIENT, "rt-old", scope="openid")
    assert tokens.refresh_token is None and tokens.id_token is None
    assert form(idp.requests[-1]) == {"grant_type": "refresh_token", "refresh_token": "rt-old",
                                      "scope": "openid"}  # fmt: skip


def test_refresh_invalid_grant_raises_refresh_refused(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(400, error="invalid_grant", error_description="revoked")
    with pytest.raises(RefreshRefusedError) as info:
        refresh(idp.client(), metadata, SECRET_CLIENT, "rt-secret-value")
    assert info.value.oauth_error == "invalid_grant"
    assert "rt-secret-value" not in str(info.value)


def test_refresh_other_oauth_error_is_token_endpoint_error(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = answer(401, error="invalid_client")
    with pytest.raises(TokenEndpointError) as info:
        refresh(idp.client(), metadata, SECRET_CLIENT, "rt")
    assert not isinstance(info.value, RefreshRefusedError)
    assert info.value.oauth_error == "invalid_client"


def test_token_endpoint_503_is_idp_unavailable(idp: FakeIdP, metadata) -> None:
    idp.routes["/token"] = lambda r: httpx.Response(503, text="maintenance")
    with pytest.raises(IdPUnavailableError):
        refresh(idp.client(), metadata, SECRET_CLIENT, "rt")


def test_token_endpoint_timeout_is_idp_unavailable(metadata) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = httpx.Client(transport=httpx.MockTransport(hang))
    with pytest.raises(IdPUnavailableError):
        refresh(client, metadata, SECRET_CLIENT, "rt")


def test_revoke_posts_token_and_hint(idp: FakeIdP, metadata) -> None:
    idp.routes["/revoke"] = lambda r: httpx.Response(200)
    assert revoke(idp.client(), metadata, SECRET_CLIENT, "rt-1", "refresh_token") is True
    assert form(idp.requests[-1]) == {"token": "rt-1", "token_type_hint": "refresh_token"}


def test_revoke_503_is_idp_unavailable(idp: FakeIdP, metadata) -> None:
    idp.routes["/revoke"] = lambda r: httpx.Response(503)
    with pytest.raises(IdPUnavailableError):
        revoke(idp.client(), metadata, SECRET_CLIENT, "rt-1", "refresh_token")


def test_revoke_without_endpoint_returns_false(idp: FakeIdP) -> None:
    from unit.oidc.oidc_testkit import make_metadata

    metadata = make_metadata(revocation_endpoint=None)
    assert revoke(idp.client(), metadata, SECRET_CLIENT, "rt-1") is False
    assert idp.requests == []
