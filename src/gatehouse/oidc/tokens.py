"""The token endpoint: code exchange, refresh (RFC 6749 4.1.3, 6; OIDC Core 3.1.3, 12) and
revocation (RFC 7009).

Failures:

* network error, timeout, 5xx → :class:`IdPUnavailableError`;
* an OAuth error answer → :class:`TokenEndpointError` with ``oauth_error``; on refresh,
  ``invalid_grant`` → :class:`RefreshRefusedError` (the session is over: sign in again);
* a success answer without ``access_token`` or with a non-Bearer ``token_type`` →
  :class:`TokenEndpointError` (``invalid_token_response`` / ``unsupported_token_type``).

The ID token in a response is *not* validated here: call
:func:`gatehouse.oidc.id_token.validate_id_token` (or ``validate_refreshed_id_token``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._http import json_object, oauth_error, send
from .client_auth import ClientCredentials, apply_client_auth
from .discovery import ProviderMetadata
from .errors import ConfigurationError, RefreshRefusedError, TokenEndpointError

__all__ = [
    "ClientCredentials",
    "TokenResponse",
    "exchange_code",
    "parse_token_response",
    "post_token_request",
    "refresh",
    "revoke",
]


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A successful token response (RFC 6749 5.1). ``token_type`` is always ``"Bearer"``."""

    access_token: str = field(repr=False)
    token_type: str
    id_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_in: int | None = None
    scope: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_token_response(document: Mapping[str, Any]) -> TokenResponse:
    """Check a success body (RFC 6749 5.1) and build a :class:`TokenResponse`.

    RFC 6749 7.1: "The client MUST NOT use an access token if it does not understand the token
    type"; token types are case-insensitive (5.1), so ``bearer`` and ``BEARER`` are Bearer.
    """
    access_token = document.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenEndpointError(
            "invalid_token_response", "The token response contains no access_token."
        )
    token_type = document.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenEndpointError(
            "unsupported_token_type", "The token response's token_type is not Bearer."
        )
    for name in ("id_token", "refresh_token", "scope"):
        value = document.get(name)
        if value is not None and not isinstance(value, str):
            raise TokenEndpointError(
                "invalid_token_response", f"The token response's {name} is not a string."
            )
    expires_in_raw = document.get("expires_in")
    expires_in: int | None
    if expires_in_raw is None:
        expires_in = None
    elif isinstance(expires_in_raw, bool):
        raise TokenEndpointError("invalid_token_response", "expires_in is not a number.")
    elif isinstance(expires_in_raw, int | float):
        expires_in = int(expires_in_raw)
    elif isinstance(expires_in_raw, str) and expires_in_raw.isdigit():
        expires_in = int(expires_in_raw)  # some providers send a string
    else:
        raise TokenEndpointError("invalid_token_response", "expires_in is not a number.")
    return TokenResponse(
        access_token=access_token,
        token_type="Bearer",  # noqa: S106 (the normalised token type, not a secret)
        id_token=document.get("id_token") or None,
        refresh_token=document.get("refresh_token") or None,
        expires_in=expires_in,
        scope=document.get("scope"),
        raw=dict(document),
    )


def post_token_request(
    http: httpx.Client,
    metadata: ProviderMetadata,
    client: ClientCredentials,
    data: Mapping[str, str],
) -> dict[str, Any]:
    """POST an authenticated form to the token endpoint; return the JSON body of a 200.

    :raises IdPUnavailableError: network error, timeout, 5xx
    :raises TokenEndpointError: any other non-200 answer (``oauth_error`` set when given),
        or a body that is not a JSON object
    """
    body, headers = apply_client_auth(client, metadata.token_endpoint, data)
    headers["Accept"] = "application/json"
    response = send(
        http, "POST", metadata.token_endpoint, what="token endpoint", data=body, headers=headers
    )
    document = json_object(response)
    if response.status_code != 200:
        code = oauth_error(document)
        raise TokenEndpointError(
            "token_endpoint_error",
            f"The token endpoint refused the request (HTTP {response.status_code}"
            + (f", {code}" if code else "")
            + ").",
            oauth_error=code,
            status_code=response.status_code,
        )
    if document is None:
        raise TokenEndpointError(
            "invalid_token_response", "The token endpoint's answer is not a JSON object."
        )
    return document


def exchange_code(
    http: httpx.Client,
    metadata: ProviderMetadata,
    client: ClientCredentials,
    code: str,
    redirect_uri: str,
    code_verifier: str,
) -> TokenResponse:
    """Exchange an authorization code (RFC 6749 4.1.3 + RFC 7636 4.5).

    OIDC Core 3.1.3.3: the response of an OpenID request contains an ``id_token``; its absence
    is an error (``missing_id_token``).
    """
    document = post_token_request(
        http,
        metadata,
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
    )
    tokens = parse_token_response(document)
    if tokens.id_token is None:
        raise TokenEndpointError(
            "missing_id_token", "The token response to an OpenID request has no id_token."
        )
    return tokens


def refresh(
    http: httpx.Client,
    metadata: ProviderMetadata,
    client: ClientCredentials,
    refresh_token: str,
    scope: str | None = None,
) -> TokenResponse:
    """Use a refresh token (RFC 6749 6, OIDC Core 12).

    OIDC Core 12.2: the response may lack ``id_token`` and ``refresh_token``. When
    ``refresh_token`` is ``None`` the caller keeps the old one; when ``id_token`` is present the
    caller validates it with ``validate_refreshed_id_token``.

    :raises RefreshRefusedError: ``invalid_grant`` (expired, revoked, user disabled)
    """
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        data["scope"] = scope
    try:
        document = post_token_request(http, metadata, client, data)
    except TokenEndpointError as exc:
        if exc.oauth_error == "invalid_grant":
            raise RefreshRefusedError(
                "refresh_refused",
                "The identity provider refused the refresh token; sign in again.",
                oauth_error=exc.oauth_error,
                status_code=exc.status_code,
            ) from exc
        raise
    return parse_token_response(document)


def revoke(
    http: httpx.Client,
    metadata: ProviderMetadata,
    client: ClientCredentials,
    token: str,
    token_type_hint: str | None = None,
) -> bool:
    """Revoke a token (RFC 7009 2.1). Returns ``False`` when no revocation endpoint exists.

    RFC 7009 2.2: "The authorization server responds with HTTP status code 200 if the token has
    been revoked successfully or if the client submitted an invalid token."

    :raises IdPUnavailableError: network error, timeout, 5xx (RFC 7009 2.2.1 ``503``)
    :raises TokenEndpointError: any other refusal (``oauth_error`` set when given)
    """
    if metadata.revocation_endpoint is None:
        return False
    if token_type_hint not in (None, "access_token", "refresh_token"):
        raise ConfigurationError("invalid_token_type_hint", "Unknown token_type_hint.")
    data = {"token": token}
    if token_type_hint is not None:
        data["token_type_hint"] = token_type_hint
    body, headers = apply_client_auth(client, metadata.revocation_endpoint, data)
    response = send(
        http,
        "POST",
        metadata.revocation_endpoint,
        what="revocation endpoint",
        data=body,
        headers=headers,
    )
    if response.status_code != 200:
        raise TokenEndpointError(
            "revocation_failed",
            f"The revocation endpoint refused the request (HTTP {response.status_code}).",
            oauth_error=oauth_error(json_object(response)),
            status_code=response.status_code,
        )
    return True
