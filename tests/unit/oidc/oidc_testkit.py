"""Helpers for the OIDC core tests: test keys, a fake IdP on httpx.MockTransport, token minting.

Keys are generated once per session (no key material on disk). The fake IdP serves discovery,
JWKS, token, revocation, userinfo and device endpoints from dictionaries a test can change.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from gatehouse.oidc import ProviderMetadata

ISSUER = "https://idp.example.com"
CLIENT_ID = "gatehouse-console"
NOW = 1_700_000_000


@dataclass
class Keys:
    rsa: RSAKey
    rsa_forger: RSAKey  # another key published under the same kid by nobody
    rsa2: RSAKey
    ec: ECKey
    okp: OKPKey


def make_keys() -> Keys:
    return Keys(
        rsa=RSAKey.generate_key(2048, parameters={"kid": "rsa1", "use": "sig"}),
        rsa_forger=RSAKey.generate_key(2048, parameters={"kid": "rsa1"}),
        rsa2=RSAKey.generate_key(2048, parameters={"kid": "rsa2"}),
        ec=ECKey.generate_key("P-256", parameters={"kid": "ec1"}),
        okp=OKPKey.generate_key("Ed25519", parameters={"kid": "ed1"}),
    )


def public_jwk(key: Key, **extra: Any) -> dict[str, Any]:
    data = dict(key.as_dict(private=False))
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def metadata_doc(issuer: str = ISSUER, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "revocation_endpoint": f"{issuer}/revoke",
        "device_authorization_endpoint": f"{issuer}/device",
        "end_session_endpoint": f"{issuer}/logout",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA", "HS256", "none"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def make_metadata(**overrides: Any) -> ProviderMetadata:
    return ProviderMetadata.from_dict(metadata_doc(**overrides), allow_insecure_http=False)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def sign(claims: dict[str, Any], key: Key, alg: str = "RS256", **header: Any) -> str:
    hdr: dict[str, Any] = {"alg": alg}
    if key.kid is not None and "kid" not in header:
        hdr["kid"] = key.kid
    hdr.update(header)
    hdr = {k: v for k, v in hdr.items() if v is not None}
    return jwt.encode(hdr, claims, key, algorithms=[alg])


def unsigned(claims: dict[str, Any], **header: Any) -> str:
    """A token with ``alg: none`` (no signature)."""
    return b64json({"alg": "none", **header}) + "." + b64json(claims) + "."


def id_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-123",
        "aud": CLIENT_ID,
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": "n-0S6_WzA2Mj",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeIdP:
    """Routes of a fake provider; each route is a handler or a canned response."""

    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    doc: dict[str, Any] = field(default_factory=metadata_doc)

    def __post_init__(self) -> None:
        self.routes.setdefault(
            "/.well-known/openid-configuration", lambda r: httpx.Response(200, json=self.doc)
        )
        self.routes.setdefault("/jwks", lambda r: httpx.Response(200, json=self.jwks))

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.url.path == path)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get(request.url.path)
        if route is None:
            return httpx.Response(404)
        return route(request)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


def answer(status: int = 200, **body: Any) -> Handler:
    """A FakeIdP route that answers ``status`` with ``body`` as JSON."""
    return lambda request: httpx.Response(status, json=body)


def ok_tokens(**extra: Any) -> dict[str, Any]:
    """A token endpoint's success body; ``extra`` changes fields (``None`` leaves one out)."""
    body = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 300,
            "id_token": "a.b.c", "refresh_token": "rt-1"}  # fmt: skip
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def form(request: httpx.Request) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(request.content.decode()))


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wall_now() -> int:
    return int(time.time())


def sign_raw(header: dict[str, Any], claims: dict[str, Any], key: Key) -> str:
    """Sign without joserfc's header checks (to build tokens joserfc would refuse to make)."""
    from joserfc.jws import JWSRegistry

    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = JWSRegistry.algorithms[header["alg"]].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"
