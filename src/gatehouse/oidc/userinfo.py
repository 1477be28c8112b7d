"""The UserInfo endpoint (OpenID Connect Core 1.0, section 5.3).

A bearer ``GET``; the answer is JSON, or a signed JWT (``application/jwt``) verified with the
provider's keys. OIDC Core 5.3.2: "The sub Claim in the UserInfo Response MUST be verified to
exactly match the sub Claim in the ID Token; if they do not match, the UserInfo Response values
MUST NOT be used." — compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Any

import httpx

from ._algs import allowed_algorithms
from ._http import json_object, media_type, send
from ._jws import verify_signed_jwt
from .discovery import ProviderMetadata
from .errors import UserInfoError
from .id_token import audiences
from .jwks import JWKSCache

__all__ = ["fetch_userinfo"]


def _signed_userinfo(
    body: str,
    *,
    metadata: ProviderMetadata,
    jwks: JWKSCache | None,
    client_id: str | None,
    allowed_algs: Collection[str] | None,
) -> dict[str, Any]:
    """OIDC Core 5.3.2: "If signed, the UserInfo Response MUST contain the Claims iss (issuer)
    and aud (audience) as members. The iss value MUST be the OP's Issuer Identifier URL. The aud
    value MUST be or include the RP's Client ID value."
    """
    if jwks is None or client_id is None:
        raise UserInfoError(
            "userinfo_unverifiable", "A signed UserInfo response needs the JWKS and client_id."
        )
    advertised = metadata.raw.get("userinfo_signing_alg_values_supported")
    if not (isinstance(advertised, list) and all(isinstance(a, str) for a in advertised)):
        advertised = metadata.id_token_signing_alg_values_supported
    verified = verify_signed_jwt(
        body.strip(),
        jwks=jwks,
        allowed_algs=allowed_algorithms(advertised, allowed_algs),
        what="UserInfo response",
    )
    claims = verified.claims
    if claims.get("iss") != metadata.issuer:
        raise UserInfoError("issuer_mismatch", "The signed UserInfo response has another iss.")
    if client_id not in audiences(claims):
        raise UserInfoError(
            "audience_mismatch", "The signed UserInfo response is not addressed to us."
        )
    return claims


def fetch_userinfo(
    http: httpx.Client,
    metadata: ProviderMetadata,
    access_token: str,
    expected_sub: str,
    *,
    jwks: JWKSCache | None = None,
    client_id: str | None = None,
    allowed_algs: Collection[str] | None = None,
) -> dict[str, Any]:
    """Fetch the UserInfo claims of the access token's user.

    :param expected_sub: the ``sub`` of the verified ID token
    :param jwks: / ``client_id``: needed only if the provider answers with a signed JWT
    :raises IdPUnavailableError: network error, timeout, 5xx
    :raises UserInfoError: no endpoint, refusal (e.g. 401), unusable body,
        ``userinfo_sub_mismatch``
    :raises TokenValidationError: a signed response failed verification
    """
    if metadata.userinfo_endpoint is None:
        raise UserInfoError("no_userinfo_endpoint", "The provider has no UserInfo endpoint.")
    response = send(
        http,
        "GET",
        metadata.userinfo_endpoint,
        what="UserInfo endpoint",
        headers={
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/json, application/jwt",
        },
    )
    if response.status_code != 200:
        raise UserInfoError(
            "userinfo_refused",
            f"The UserInfo endpoint refused the request (HTTP {response.status_code}).",
        )
    claims: dict[str, Any] | None
    if media_type(response) == "application/jwt":
        claims = _signed_userinfo(
            response.text,
            metadata=metadata,
            jwks=jwks,
            client_id=client_id,
            allowed_algs=allowed_algs,
        )
    else:
        claims = json_object(response)
        if claims is None:
            raise UserInfoError("invalid_userinfo", "The UserInfo response is not a JSON object.")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not hmac.compare_digest(sub.encode(), expected_sub.encode()):
        raise UserInfoError("userinfo_sub_mismatch", "The UserInfo response names another subject.")
    return claims
