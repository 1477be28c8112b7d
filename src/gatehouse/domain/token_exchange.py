"""Tools' token exchange: a fresh IdP ID token (native client) → a Gatehouse access token.

The ID token is validated with the web flow's rules (signature with the IdP's keys, ``iss``,
``aud``, ``azp``, algorithm, ``exp``/``iat`` with the configured clock skew) except that:

* its audience must be the **native** client id — an ID token issued to the web client is
  refused, so a token stolen from a browser session cannot be turned into an API token;
* there is no nonce to compare (the tool checked its own), so freshness stands in for it: the
  token must have been issued less than :data:`MAX_ID_TOKEN_AGE_SECONDS` ago;
* it is single-use: a second exchange of the same token, on any replica, is refused
  (``token_replayed``), so a token that leaked from a tool's traffic is worth nothing alone.
  Only with an IdP access token that UserInfo accepts for the same subject does it pass again:
  an IdP may legitimately answer a refresh within the same second with a byte-identical ID
  token (no ``jti``, same ``iat``), and that access token proves the refresh happened.

When the ID token lacks a claim that matching needs (IdPs that put profile claims only in
UserInfo), the tool's IdP access token, if sent, is used for UserInfo, whose ``sub`` must be the
ID token's (OIDC Core 5.3.4) — as in the web flow.

**Renewal.** OIDC Core 12.2 lets an IdP answer a refresh without a new ID token. The tool then
sends the Gatehouse token it holds (expired or not) and the fresh IdP access token: the first
proves which earlier exchange this continues (our signature, native client, sign-in less than
``GATEHOUSE_SESSION_MAX_HOURS`` ago, as for console sessions), the second that the IdP still
stands behind the user now (UserInfo answers with the bound subject).

The identity then goes through the same user matching as the web sign-in
(:func:`gatehouse.domain.identity.match_user`): bound ``(iss, sub)``, first-sign-in binding,
disabled and unknown users refused. Every outcome is counted (``TOKEN_EXCHANGE{outcome}``) and
audited (``token.exchange`` / ``token.renew``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from gatehouse.domain import audit, replay, users
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import sha256_hex
from gatehouse.domain.errors import Conflict, DomainError, Unauthenticated, Unavailable
from gatehouse.domain.identity import IdentityRefused, claims_needed, match_user
from gatehouse.domain.idp import IdPContext, IdPNotConfigured
from gatehouse.domain.signin.common import SignInServices
from gatehouse.metrics import IDP_UNAVAILABLE, TOKEN_EXCHANGE
from gatehouse.oidc import (
    DiscoveryError,
    IdPUnavailableError,
    TokenValidationError,
    UserInfoError,
    validate_id_token,
)
from gatehouse.store.models import User

MAX_ID_TOKEN_AGE_SECONDS = 300


@dataclass(frozen=True)
class Exchanged:
    access_token: str
    expires_in: int
    user_id: int


def _refused(svc: SignInServices, ip: str | None, error: DomainError, action: str) -> DomainError:
    TOKEN_EXCHANGE.labels(outcome=error.code).inc()
    audit.record_now(
        svc.db.session,
        Actor.anonymous(ip),
        action,
        outcome="failure",
        reason=error.code,
        details={"detail": error.detail},
    )
    return error


def _unavailable(step: str) -> Unavailable:
    IDP_UNAVAILABLE.labels(step=step).inc()
    return Unavailable(
        "The identity provider cannot be reached to check the token; try again shortly.",
        code="idp_unavailable",
    )


def role_claims(user: Any) -> list[dict[str, str | None]]:
    """The user's roles as they go into the access token."""
    return [{"role": g.role, "environment": g.environment} for g in users.effective_roles(user)]


def _native_context(svc: SignInServices) -> tuple[IdPContext, str]:
    """The active IdP and its native client id, or the Conflict that says what is missing."""
    if not svc.idp.is_active():
        raise Conflict(
            "Single sign-on is not active on this server; local admins use /api/v1/auth/local.",
            code="oidc_not_active",
        )
    ctx = svc.idp.current()
    client_id = ctx.settings.native_client_id
    if not client_id:
        raise Conflict(
            "No client id for tools is configured at this server (IdP settings: native_client_id).",
            code="native_client_not_configured",
        )
    return ctx, client_id


def _userinfo(ctx: IdPContext, client_id: str, access_token: str, sub: str) -> dict[str, Any]:
    """UserInfo for the tool's IdP access token; its ``sub`` must be ``sub``."""
    try:
        return ctx.userinfo(access_token, sub, client_id)
    except (IdPUnavailableError, DiscoveryError) as exc:
        raise _unavailable("userinfo") from exc
    except (UserInfoError, TokenValidationError) as exc:
        raise Unauthenticated(
            f"The identity provider's user information was refused: {exc.description}",
            code=exc.error,
        ) from exc


def _first_exchange(svc: SignInServices, raw: str, claims: dict[str, Any], leeway: int) -> bool:
    """Whether this ID token is exchanged for the first time (replicas share the answer).

    Remembered until it could no longer pass validation (``exp`` or the freshness limit, plus
    the clock-skew leeway), keyed by ``jti`` when the IdP sets one, else by the token's hash.
    """
    jti = claims.get("jti")
    token_id = jti if isinstance(jti, str) and jti else sha256_hex(raw)
    last_valid = min(float(claims["exp"]), float(claims["iat"]) + MAX_ID_TOKEN_AGE_SECONDS)
    until = datetime.fromtimestamp(last_valid + leeway + 1, UTC)
    return replay.first_use(svc.db, f"id_token\n{claims['iss']}\n{token_id}", until)


def _identity_changed() -> IdentityRefused:
    return IdentityRefused(
        "This account is no longer linked to that identity; sign in again.",
        code="identity_changed",
    )


def _granted(
    db: Session, user: User, ip: str | None, action: str, issuer: str, client_id: str
) -> tuple[list[dict[str, str | None]], int]:
    """Audit a granted exchange or renewal; the roles that go into the token, and the user id."""
    audit.record(
        db,
        Actor.of(user, ip),
        action,
        target_type="user",
        target_id=user.id,
        details={"issuer": issuer, "client_id": client_id},
    )
    return role_claims(user), user.id


def _issue(
    svc: SignInServices, user_id: int, client_id: str, roles: Any, auth_time: int
) -> Exchanged:
    svc.users.invalidate(user_id)
    token, lifetime = svc.tokens.issue(
        str(user_id),
        {
            "amr": ["oidc"],
            "method": "oidc",
            "client_id": client_id,
            "auth_time": auth_time,
            "roles": roles,
        },
    )
    return Exchanged(access_token=token, expires_in=lifetime, user_id=user_id)


def exchange_id_token(
    svc: SignInServices,
    raw_id_token: str,
    *,
    ip: str | None,
    idp_access_token: str | None = None,
    now: float | None = None,
) -> Exchanged:
    """Validate ``raw_id_token`` and issue a Gatehouse access token for its user.

    :param idp_access_token: the IdP access token issued with the ID token; used only for
        UserInfo when the ID token lacks a claim that matching needs
    :raises Conflict: single sign-on is not active, or no native client is configured (409)
    :raises Unauthenticated: the ID token failed a check (401, ``code`` = the failed rule)
    :raises IdentityRefused: unknown or disabled user, unbindable identity (403)
    :raises Unavailable: the IdP's discovery or keys cannot be fetched (503)

    ``now`` (tests): the wall-clock time to validate at.
    """
    action = "token.exchange"
    try:
        ctx, client_id = _native_context(svc)
        try:
            claims: dict[str, Any] = dict(
                validate_id_token(
                    raw_id_token,
                    metadata=ctx.metadata(),
                    jwks=ctx.jwks,
                    client_id=client_id,
                    nonce=None,
                    leeway_seconds=ctx.settings.clock_skew_seconds,
                    max_iat_age_seconds=MAX_ID_TOKEN_AGE_SECONDS,
                    now=now,
                )
            )
        except TokenValidationError as exc:
            raise Unauthenticated(exc.description, code=exc.error) from exc
        except (IdPUnavailableError, DiscoveryError) as exc:
            raise _unavailable("token_exchange") from exc
        replayed = not _first_exchange(svc, raw_id_token, claims, ctx.settings.clock_skew_seconds)
        if replayed and not idp_access_token:
            raise Unauthenticated(
                "This ID token was already exchanged; sign in again.", code="token_replayed"
            )
        if idp_access_token and (
            replayed or any(n not in claims for n in claims_needed(ctx.settings))
        ):
            info = _userinfo(ctx, client_id, idp_access_token, str(claims["sub"]))
            claims = {**info, **claims}  # the signed ID token wins where both speak
        issuer = str(claims["iss"])
        with svc.db.session() as db:
            user = match_user(db, ctx.settings, issuer, claims, ip=ip)
            users.mark_signed_in(user)
            roles, user_id = _granted(db, user, ip, action, issuer, client_id)
    except (Conflict, IdPNotConfigured, Unauthenticated, IdentityRefused, Unavailable) as exc:
        raise _refused(svc, ip, exc, action) from exc
    TOKEN_EXCHANGE.labels(outcome="ok").inc()
    return _issue(svc, user_id, client_id, roles, int(time.time() if now is None else now))


def renew_access_token(
    svc: SignInServices, previous_token: str, idp_access_token: str, *, ip: str | None
) -> Exchanged:
    """A new Gatehouse token for a tool whose IdP refresh brought no new ID token.

    :param previous_token: the Gatehouse token the tool holds (may have expired)
    :param idp_access_token: the access token of the IdP's refresh response
    :raises Unauthenticated: the previous token is not ours, not a tool's sign-in, too old,
        or UserInfo refused the access token or named another subject (401)
    :raises IdentityRefused: the user is disabled, gone, or bound elsewhere (403)
    :raises Conflict: / :raises Unavailable: as :func:`exchange_id_token`
    """
    action = "token.renew"
    try:
        ctx, client_id = _native_context(svc)
        previous = svc.tokens.verify_for_renewal(
            previous_token, max_age_seconds=svc.session_limits.absolute.total_seconds()
        )
        if previous.get("method") != "oidc" or previous.get("client_id") != client_id:
            raise Unauthenticated(
                "Only a token from a tool's sign-in through the identity provider can be renewed.",
                code="not_renewable",
            )
        user_id = int(previous["sub"])
        issuer = ctx.settings.issuer
        with svc.db.session() as db:
            bound = db.get(User, user_id)
            subject = bound.idp_subject if bound is not None else None
            if bound is None or bound.idp_issuer != issuer or not subject:
                raise _identity_changed()
        info = _userinfo(ctx, client_id, idp_access_token, subject)
        with svc.db.session() as db:
            user = match_user(db, ctx.settings, issuer, info, ip=ip)
            if user.id != user_id:
                raise _identity_changed()
            roles, _ = _granted(db, user, ip, action, issuer, client_id)
    except (Conflict, IdPNotConfigured, Unauthenticated, IdentityRefused, Unavailable) as exc:
        raise _refused(svc, ip, exc, action) from exc
    TOKEN_EXCHANGE.labels(outcome="renewed").inc()
    return _issue(svc, user_id, client_id, roles, int(previous["auth_time"]))
