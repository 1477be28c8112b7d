"""Client authentication at the token endpoint (RFC 6749 2.3, OIDC Core 9, RFC 7523).

Methods:

* ``client_secret_basic`` — HTTP Basic; id and secret are form-urlencoded *before* base64
  (RFC 6749 2.3.1), so a secret with ``:``, ``%`` or non-ASCII characters survives;
* ``client_secret_post`` — id and secret in the form body;
* ``private_key_jwt`` — a short-lived JWT signed with our private key, ``iss = sub = client_id``,
  ``aud`` = the token endpoint, a random ``jti``, ``exp`` 60 s ahead (RFC 7523 3, OIDC Core 9);
* ``none`` — a public client (native tools): ``client_id`` in the body, PKCE protects the code.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey

from ._algs import ASYMMETRIC_ALGS
from .errors import ConfigurationError

__all__ = [
    "ASSERTION_LIFETIME_SECONDS",
    "CLIENT_ASSERTION_TYPE",
    "AuthMethod",
    "ClientCredentials",
    "apply_client_auth",
    "build_client_assertion",
]

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_SECONDS = 60

_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """How this relying party authenticates to the token endpoint.

    :param client_id: the client identifier registered at the IdP
    :param client_secret: for ``client_secret_basic`` / ``client_secret_post``
    :param auth_method: one of :data:`AuthMethod`
    :param private_key_jwk: for ``private_key_jwt``: a private JWK (dict or joserfc key)
    :param signing_alg: for ``private_key_jwt``: the JWS alg; default from the key
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    auth_method: AuthMethod = "client_secret_basic"
    private_key_jwk: Mapping[str, Any] | Key | None = field(default=None, repr=False)
    signing_alg: str | None = None

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ConfigurationError("invalid_client", "The client_id is empty.")
        if self.auth_method in ("client_secret_basic", "client_secret_post"):
            if not self.client_secret:
                raise ConfigurationError(
                    "invalid_client", f"{self.auth_method} needs a client secret."
                )
        elif self.auth_method == "private_key_jwt":
            if self.private_key_jwk is None:
                raise ConfigurationError("invalid_client", "private_key_jwt needs a private key.")
        elif self.auth_method != "none":
            raise ConfigurationError(
                "invalid_client", "Unsupported token endpoint authentication method."
            )


def _form_urlencode(value: str) -> str:
    return quote_plus(value, safe="")


def _signing_key(jwk: Mapping[str, Any] | Key) -> Key:
    if isinstance(jwk, (RSAKey, ECKey, OKPKey)):
        key: Key = jwk
    else:
        try:
            key = JWKRegistry.import_key(dict(jwk))
        except (JoseError, ValueError, TypeError) as exc:
            raise ConfigurationError(
                "invalid_client_key", "The client's private key is not a valid JWK."
            ) from exc
    if not key.is_private:
        raise ConfigurationError("invalid_client_key", "The client's key is not a private key.")
    return key


def _signing_alg(key: Key, requested: str | None) -> str:
    alg = requested or key.alg
    if alg is None:
        if isinstance(key, RSAKey):
            alg = "RS256"
        elif isinstance(key, ECKey):
            alg = _EC_ALGS.get(key.curve_name, "")
        elif isinstance(key, OKPKey):
            alg = "EdDSA"
    if not alg or alg not in ASYMMETRIC_ALGS:
        raise ConfigurationError(
            "invalid_client_key", "No asymmetric signing algorithm fits the client's key."
        )
    return alg


def build_client_assertion(
    client: ClientCredentials, audience: str, *, now: float | None = None
) -> str:
    """RFC 7523 2.2 / OIDC Core 9 ``private_key_jwt`` client assertion.

    "iss REQUIRED. Issuer. This MUST contain the client_id of the OAuth Client.
    sub REQUIRED. Subject. This MUST contain the client_id of the OAuth Client.
    aud REQUIRED. Audience ... the Authorization Server's Token Endpoint URL.
    jti REQUIRED. JWT ID. A unique identifier for the token ...
    exp REQUIRED. Expiration time on or after which the ID Token MUST NOT be accepted"
    """
    if client.private_key_jwk is None:
        raise ConfigurationError("invalid_client", "private_key_jwt needs a private key.")
    key = _signing_key(client.private_key_jwk)
    alg = _signing_alg(key, client.signing_alg)
    issued = int(time.time() if now is None else now)
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if key.kid:
        header["kid"] = key.kid
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(24),
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME_SECONDS,
    }
    return jwt.encode(header, claims, key, algorithms=[alg])


def apply_client_auth(
    client: ClientCredentials,
    token_endpoint: str,
    data: Mapping[str, str],
    *,
    assertion_audience: str | None = None,
    now: float | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Return the form body and headers of a token-endpoint request authenticated as ``client``.

    :param assertion_audience: ``aud`` of a private_key_jwt assertion (default: the token
        endpoint URL)
    """
    body = dict(data)
    headers: dict[str, str] = {}
    method = client.auth_method
    if method == "client_secret_basic":
        assert client.client_secret is not None
        userpass = f"{_form_urlencode(client.client_id)}:{_form_urlencode(client.client_secret)}"
        token = base64.b64encode(userpass.encode("utf-8")).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    elif method == "client_secret_post":
        assert client.client_secret is not None
        body["client_id"] = client.client_id
        body["client_secret"] = client.client_secret
    elif method == "private_key_jwt":
        body["client_id"] = client.client_id
        body["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        body["client_assertion"] = build_client_assertion(
            client, assertion_audience or token_endpoint, now=now
        )
    else:  # "none": a public client identifies itself only
        body["client_id"] = client.client_id
    return body, headers
