"""Logout token validation, OpenID Connect Back-Channel Logout 1.0, section 2.6.

The receiver (``POST /auth/oidc/backchannel-logout``) calls :func:`validate_logout_token`, then
ends the sessions named by ``sid`` and/or ``sub``. Like ID tokens, the signature is verified
before any claim is read; the replay check (``jti``) runs last, so that an invalid token never
takes a place in the replay store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, NewType

from ._algs import allowed_algorithms
from ._jws import verify_signed_jwt
from .discovery import ProviderMetadata
from .errors import TokenValidationError
from .id_token import (
    BACKCHANNEL_LOGOUT_EVENT,
    _check_leeway,
    _Context,
    _registry_check,
    run_rules,
    validate_aud,
    validate_iat,
    validate_iss,
)
from .jwks import JWKSCache

__all__ = [
    "LOGOUT_TOKEN_RULES",
    "LOGOUT_TOKEN_TYP",
    "VerifiedLogoutTokenClaims",
    "validate_logout_token",
]

#: claims of a logout token that passed every check of BCL 2.6
VerifiedLogoutTokenClaims = NewType("VerifiedLogoutTokenClaims", dict[str, Any])

LOGOUT_TOKEN_TYP = "logout+jwt"  # noqa: S105 (a media type, not a secret)

#: a logout token without ``exp`` older than this is refused (its jti is kept this long)
DEFAULT_MAX_AGE_WITHOUT_EXP_SECONDS = 600


def _fail(error: str, description: str) -> TokenValidationError:
    return TokenValidationError(error, description)


def validate_typ(ctx: _Context) -> None:
    """BCL 2.4: "Logout Tokens SHOULD be explicitly typed ... by using the typ JWT header with
    the value logout+jwt". A present ``typ`` of another value is refused (RFC 8725 3.11: typ
    tells kinds of JWTs apart); ``application/`` may be prefixed, compared case-insensitively.
    """
    typ = ctx.header.get("typ")
    if typ is None:
        return
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != LOGOUT_TOKEN_TYP:
        raise _fail("wrong_token_type", "The logout token's typ header is not logout+jwt.")


def validate_exp_if_present(ctx: _Context) -> None:
    """BCL 2.6 step 3: "Validate the iss, aud, iat, and exp Claims in the same way they are
    validated in ID Tokens." ``exp`` is checked when present (earlier drafts omitted it)."""
    exp = ctx.claims.get("exp")
    if exp is None:
        return
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise _fail("invalid_claim", "The logout token's exp is not a number.")
    if ctx.now >= exp + ctx.leeway:
        raise _fail("token_expired", "The logout token has expired.")


def validate_sid_or_sub(ctx: _Context) -> None:
    """BCL 2.6 step 4: "Verify that the Logout Token contains a sub Claim, a sid Claim, or
    both." """
    sub = ctx.claims.get("sub")
    sid = ctx.claims.get("sid")
    if sub is None and sid is None:
        raise _fail("missing_claim", "The logout token contains neither sub nor sid.")
    for name, value in (("sub", sub), ("sid", sid)):
        if value is not None and (not isinstance(value, str) or not value):
            raise _fail("invalid_claim", f"The logout token's {name} is not a non-empty string.")


def validate_events(ctx: _Context) -> None:
    """BCL 2.6 step 5: "Verify that the Logout Token contains an events Claim whose value is
    JSON object containing the member name http://schemas.openid.net/event/backchannel-logout."
    BCL 2.4: "The value ... MUST be a JSON object and SHOULD be the empty JSON object {}."
    """
    events = ctx.claims.get("events")
    if not isinstance(events, dict) or BACKCHANNEL_LOGOUT_EVENT not in events:
        raise _fail("missing_claim", "The logout token has no back-channel logout event.")
    if not isinstance(events[BACKCHANNEL_LOGOUT_EVENT], dict):
        raise _fail("invalid_claim", "The back-channel logout event value is not an object.")


def validate_no_nonce(ctx: _Context) -> None:
    """BCL 2.6 step 6: "Verify that the Logout Token does not contain a nonce Claim." (2.4: "A
    nonce Claim MUST NOT be used ... to prevent its misuse as an ID Token".)"""
    if "nonce" in ctx.claims:
        raise _fail("nonce_present", "The logout token contains a nonce.")


def validate_jti_present(ctx: _Context) -> None:
    """BCL 2.4: "jti REQUIRED. Unique identifier for the token"."""
    jti = ctx.claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _fail("missing_claim", "The logout token has no jti.")


#: the logout token rules, in order (signature and alg are checked before, replay after)
LOGOUT_TOKEN_RULES = (
    validate_typ,
    validate_iss,
    validate_aud,
    validate_iat,
    validate_exp_if_present,
    validate_sid_or_sub,
    validate_events,
    validate_no_nonce,
    validate_jti_present,
)


def validate_logout_token(
    raw_jwt: str,
    *,
    metadata: ProviderMetadata,
    jwks: JWKSCache,
    client_id: str,
    leeway_seconds: int,
    seen_jti: Callable[[str, int], bool],
    now: float | None = None,
    allowed_algs: Collection[str] | None = None,
    trusted_audiences: Collection[str] = frozenset(),
    max_age_without_exp_seconds: int = DEFAULT_MAX_AGE_WITHOUT_EXP_SECONDS,
) -> VerifiedLogoutTokenClaims:
    """Validate a logout token (BCL 1.0 2.6) and record its ``jti``.

    :param seen_jti: ``seen_jti(jti, expires_at)`` returns ``True`` when ``jti`` was already
        seen, else records it until ``expires_at`` (epoch seconds: the token's ``exp``, or
        ``iat + max_age_without_exp_seconds``) and returns ``False``. Must be atomic (e.g. an
        INSERT on a unique key) when several replicas receive logout tokens.
    :raises TokenValidationError: ``replayed_jti`` for a second delivery, else the failed rule
    """
    verified = verify_signed_jwt(
        raw_jwt,
        jwks=jwks,
        allowed_algs=allowed_algorithms(
            metadata.id_token_signing_alg_values_supported, allowed_algs
        ),
        what="logout token",
    )
    claims: Mapping[str, Any] = verified.claims
    has_exp = claims.get("exp") is not None
    ctx = _Context(
        claims=claims,
        header=verified.header,
        alg=verified.alg,
        key=verified.key,
        issuer=metadata.issuer,
        client_id=client_id,
        trusted_audiences=frozenset(trusted_audiences),
        now=time.time() if now is None else now,
        leeway=_check_leeway(leeway_seconds),
        nonce=None,
        access_token=None,
        max_age_seconds=None,
        # without exp, the iat bounds how long the jti must be remembered
        max_iat_age_seconds=None if has_exp else max_age_without_exp_seconds,
    )
    run_rules(ctx, LOGOUT_TOKEN_RULES)
    _registry_check(ctx, essential=("iat", "jti", "events"), check_aud=True)

    expires_at = int(claims["exp"]) if has_exp else int(claims["iat"]) + max_age_without_exp_seconds
    if seen_jti(claims["jti"], expires_at + ctx.leeway):
        raise _fail("replayed_jti", "This logout token was already received.")
    return VerifiedLogoutTokenClaims(dict(claims))
