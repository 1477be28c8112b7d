"""Tools' token exchange: a fresh IdP ID token (native client) → a Gatehouse access token.

The ID token is validated with the web flow's rules (signature with the IdP's keys, ``iss``,
``aud``, ``azp``, algorithm, ``exp``/``iat`` with the configured clock skew) except that:

* its audience must be the **native** client id — an ID token issued to the web client is
  refused, so a token stolen from a browser session cannot be turned into an API token;
* there is no nonce to compare (the tool checked its own), so freshness stands in for it: the
  token must have been issued less than :data:`MAX_ID_TOKEN_AGE_SECONDS` ago.

The identity then goes through the same user matching as the web sign-in
(:func:`gatehouse.domain.identity.match_user`): bound ``(iss, sub)``, first-sign-in binding,
disabled and unknown users refused. Every outcome is counted (``TOKEN_EXCHANGE{outcome}``) and
audited (``token.exchange``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatehouse.domain import audit, users
from gatehouse.domain.audit import Actor
from gatehouse.domain.errors import Conflict, DomainError, Unauthenticated, Unavailable
from gatehouse.domain.identity import IdentityRefused, match_user
from gatehouse.domain.idp import IdPNotConfigured
from gatehouse.metrics import IDP_UNAVAILABLE, TOKEN_EXCHANGE
from gatehouse.oidc import (
    DiscoveryError,
    IdPUnavailableError,
    TokenValidationError,
    validate_id_token,
)
from gatehouse.runtime import Runtime

MAX_ID_TOKEN_AGE_SECONDS = 300


@dataclass(frozen=True)
class Exchanged:
    access_token: str
    expires_in: int
    user_id: int


def _refused(rt: Runtime, ip: str | None, error: DomainError) -> DomainError:
    TOKEN_EXCHANGE.labels(outcome=error.code).inc()
    audit.record_now(
        rt.db.session,
        Actor.anonymous(ip),
        "token.exchange",
        outcome="failure",
        reason=error.code,
        details={"detail": error.detail},
    )
    return error


def role_claims(user: Any) -> list[dict[str, str | None]]:
    """The user's roles as they go into the access token."""
    return [{"role": g.role, "environment": g.environment} for g in users.effective_roles(user)]


def exchange_id_token(
    rt: Runtime, raw_id_token: str, *, ip: str | None, now: float | None = None
) -> Exchanged:
    """Validate ``raw_id_token`` and issue a Gatehouse access token for its user.

    :raises Conflict: single sign-on is not active, or no native client is configured (409)
    :raises Unauthenticated: the ID token failed a check (401, ``code`` = the failed rule)
    :raises IdentityRefused: unknown or disabled user, unbindable identity (403)
    :raises Unavailable: the IdP's discovery or keys cannot be fetched (503)

    ``now`` (tests): the wall-clock time to validate at.
    """
    if not rt.idp.is_active():
        raise _refused(
            rt,
            ip,
            Conflict(
                "Single sign-on is not active on this server; local admins use /api/v1/auth/local.",
                code="oidc_not_active",
            ),
        )
    try:
        ctx = rt.idp.current()
    except IdPNotConfigured as exc:
        raise _refused(rt, ip, exc) from exc
    client_id = ctx.settings.native_client_id
    if not client_id:
        raise _refused(
            rt,
            ip,
            Conflict(
                "No client id for tools is configured at this server (IdP settings: "
                "native_client_id).",
                code="native_client_not_configured",
            ),
        )
    try:
        claims = validate_id_token(
            raw_id_token,
            metadata=ctx.metadata(),
            jwks=ctx.jwks,
            client_id=client_id,
            nonce=None,
            leeway_seconds=ctx.settings.clock_skew_seconds,
            max_iat_age_seconds=MAX_ID_TOKEN_AGE_SECONDS,
            now=now,
        )
    except TokenValidationError as exc:
        raise _refused(rt, ip, Unauthenticated(exc.description, code=exc.error)) from exc
    except (IdPUnavailableError, DiscoveryError) as exc:
        IDP_UNAVAILABLE.labels(step="token_exchange").inc()
        raise _refused(
            rt,
            ip,
            Unavailable(
                "The identity provider cannot be reached to check the token; try again shortly.",
                code="idp_unavailable",
            ),
        ) from exc
    issuer = str(claims["iss"])
    try:
        with rt.db.session() as db:
            user = match_user(db, ctx.settings, issuer, claims, actor=Actor.anonymous(ip))
            users.mark_signed_in(user)
            roles = role_claims(user)
            user_id = user.id
            audit.record(
                db,
                Actor.of(user, ip),
                "token.exchange",
                target_type="user",
                target_id=user.id,
                details={"issuer": issuer, "client_id": client_id},
            )
    except IdentityRefused as exc:
        raise _refused(rt, ip, exc) from exc
    rt.users.invalidate(user_id)
    token, lifetime = rt.tokens.issue(
        str(user_id),
        {"amr": ["oidc"], "method": "oidc", "client_id": client_id, "roles": roles},
    )
    TOKEN_EXCHANGE.labels(outcome="ok").inc()
    return Exchanged(access_token=token, expires_in=lifetime, user_id=user_id)
