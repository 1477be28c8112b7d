"""Verification of a signed JWT from the provider (private; shared by ID tokens, logout tokens
and signed UserInfo responses).

Order, all before any claim is trusted:

1. structure: three base64url parts whose header and payload are JSON objects; five parts is an
   encrypted JWT (JWE), refused — we register no encryption keys;
2. header: ``alg`` in the allow-list (never ``none``, never ``HS*``), no ``crit`` (we implement
   no JWS extension, RFC 7515 4.1.11: "If any of the listed extension Header Parameters are
   not understood and supported by the recipient, then the JWS is invalid"), no ``b64``;
   keys named by ``jku``/``jwk``/``x5u``/``x5c`` headers are never used;
3. key: by ``kid`` from the provider's JWKS (:class:`JWKSCache`);
4. signature: joserfc, with the single expected algorithm spelled out.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry

from .errors import TokenValidationError
from .jwks import JWKSCache

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")

#: JOSE headers we never accept on a token from the provider
_REFUSED_HEADERS = ("crit", "b64", "enc", "zip")

#: longest JOSE header accepted (joserfc's default of 512 bytes is too small for x5c headers)
_MAX_HEADER_BYTES = 8192


@dataclass(frozen=True, slots=True)
class VerifiedJWS:
    """A JWT whose signature has been verified with a key of the provider."""

    header: dict[str, Any]
    claims: dict[str, Any]
    alg: str
    key: Key


def _malformed(what: str, detail: str) -> TokenValidationError:
    return TokenValidationError("malformed_token", f"The {what} is malformed: {detail}.")


def _b64_json_object(segment: str, what: str, part: str) -> dict[str, Any]:
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise _malformed(what, f"its {part} is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(data)
    except (binascii.Error, ValueError) as exc:
        raise _malformed(what, f"its {part} is not base64url-encoded JSON") from exc
    if not isinstance(value, dict):
        raise _malformed(what, f"its {part} is not a JSON object")
    return value


def split_compact(raw: str, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode header and payload of a compact JWS without verifying anything."""
    if not isinstance(raw, str) or not raw:
        raise _malformed(what, "it is not a string")
    parts = raw.split(".")
    if len(parts) == 5:
        raise TokenValidationError(
            "jwe_refused", f"The {what} is encrypted (JWE); encrypted tokens are not accepted."
        )
    if len(parts) != 3:
        raise _malformed(what, "it does not have three parts")
    header = _b64_json_object(parts[0], what, "header")
    claims = _b64_json_object(parts[1], what, "payload")
    return header, claims


def check_header(header: dict[str, Any], allowed_algs: Collection[str], what: str) -> str:
    """The header's ``alg``, after the allow-list and refused-header checks."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise _malformed(what, "its header has no alg")
    if alg == "none" or alg.upper().startswith("HS") or alg not in allowed_algs:
        raise TokenValidationError(
            "alg_not_allowed", f"The {what} is signed with an algorithm that is not allowed."
        )
    if "crit" in header:
        raise TokenValidationError(
            "crit_unsupported", f"The {what} has critical header extensions we do not support."
        )
    for name in _REFUSED_HEADERS:
        if name in header:
            raise TokenValidationError(
                "unsupported_header", f"The {what} has the unsupported header {name!r}."
            )
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _malformed(what, "its kid is not a string")
    return alg


def verify_signed_jwt(
    raw: str, *, jwks: JWKSCache, allowed_algs: Collection[str], what: str
) -> VerifiedJWS:
    """Steps 1-4 of the module docstring. ``what`` names the token in error sentences."""
    header, _ = split_compact(raw, what)
    alg = check_header(header, allowed_algs, what)
    if not raw.rsplit(".", 1)[1]:
        raise _malformed(what, "it has no signature")
    key = jwks.get_key(header.get("kid"), alg)

    registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
    registry.max_header_length = _MAX_HEADER_BYTES
    try:
        token = jwt.decode(raw, key, algorithms=[alg], registry=registry)
    except BadSignatureError as exc:
        raise TokenValidationError(
            "invalid_signature", f"The {what}'s signature does not verify."
        ) from exc
    except JoseError as exc:
        # key type / curve / declared use that does not fit the algorithm, oversized parts …
        raise TokenValidationError(
            "invalid_signature",
            f"The {what} cannot be verified with the provider's key ({exc.error}).",
        ) from exc
    except ValueError as exc:
        raise _malformed(what, "it could not be decoded") from exc
    return VerifiedJWS(header=dict(token.header), claims=dict(token.claims), alg=alg, key=key)
