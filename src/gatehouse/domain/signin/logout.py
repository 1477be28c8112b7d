"""Signing out through the IdP: RP-Initiated Logout (the browser goes to the IdP) and
Back-Channel Logout (the IdP tells us a user's IdP session ended)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.domain import audit, replay
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import BrowserContext, DecryptionError, EncryptionContext, unseal
from gatehouse.domain.idp import IdPNotConfigured
from gatehouse.domain.signin.common import SignInError, SignInServices, expiry
from gatehouse.metrics import BACKCHANNEL_LOGOUT, IDP_UNAVAILABLE
from gatehouse.oidc import IdPUnavailableError, OIDCError, validate_logout_token
from gatehouse.store.models import Session as SessionRow
from gatehouse.store.models import utcnow

#: longest logout token accepted (a larger one is refused before any parsing)
MAX_LOGOUT_TOKEN_LENGTH = 16_384


def logout_url(svc: SignInServices, db: Session, row: SessionRow) -> str | None:
    """RP-Initiated Logout 1.0, 2: the IdP's ``end_session_endpoint`` with ``id_token_hint``,
    ``post_logout_redirect_uri`` (= public URL + ``/login``) and ``client_id``; ``None`` when
    the session is not an OIDC one or the IdP offers no such endpoint (or cannot be reached:
    signing out of Gatehouse never waits for the IdP)."""
    if row.method != "oidc" or row.id_token_enc is None:
        return None
    try:
        ctx = svc.idp.current(db)
        metadata = ctx.metadata()
        id_token = svc.box.decrypt_str(row.id_token_enc, context=EncryptionContext.SESSION_ID_TOKEN)
    except (IdPNotConfigured, OIDCError, DecryptionError):
        IDP_UNAVAILABLE.labels(step="logout").inc()
        return None
    if not metadata.end_session_endpoint or metadata.issuer != row.idp_issuer:
        return None
    return _end_session_url(metadata.end_session_endpoint, id_token, svc, ctx.settings.client_id)


def _end_session_url(endpoint: str, id_token: str, svc: SignInServices, client_id: str) -> str:
    params = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": svc.public_url + "/login",
            "client_id": client_id,
        }
    )
    parts = urlsplit(endpoint)
    query = f"{parts.query}&{params}" if parts.query else params
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def refused_logout_url(svc: SignInServices, sealed: str | None) -> str | None:
    """RP-Initiated Logout for a sign-in Gatehouse refused: the IdP's ``end_session_endpoint``
    with the refused sign-in's ID token as ``id_token_hint`` (sealed in the browser by the
    callback, ``BrowserContext.REFUSED_SIGN_IN``, for a few minutes). ``None`` when the seal is
    unreadable or expired, the IdP changed, or it offers no such endpoint."""
    kept = unseal(svc.box, sealed, context=BrowserContext.REFUSED_SIGN_IN)
    if kept is None or not isinstance(kept.get("id_token"), str):
        return None
    try:
        ctx = svc.idp.current()
        metadata = ctx.metadata()
    except (IdPNotConfigured, OIDCError):
        IDP_UNAVAILABLE.labels(step="logout").inc()
        return None
    if not metadata.end_session_endpoint or metadata.issuer != kept.get("issuer"):
        return None
    return _end_session_url(
        metadata.end_session_endpoint, kept["id_token"], svc, ctx.settings.client_id
    )


def _seen_jti(svc: SignInServices, issuer: str) -> Callable[[str, int], bool]:
    """``seen_jti(jti, expires_at)`` for :func:`validate_logout_token`: shared by replicas, so
    that two of them never both accept one logout token."""

    def seen(jti: str, expires_at: int) -> bool:
        return not replay.first_use(svc.db, issuer + "\n" + jti, expiry(expires_at))

    return seen


def backchannel_logout(svc: SignInServices, logout_token: str | None) -> int:
    """Validate a logout token (Back-Channel Logout 1.0, 2.6) and end the sessions it names.

    BCL 2.7: with ``sid``, the session(s) of that IdP session; with only ``sub``, every session
    of that user at this IdP. Returns how many sessions ended (0 when already gone).

    :raises SignInError: ``invalid_request`` / a validation code (400), ``idp_unavailable`` (503)
    """
    if not logout_token or len(logout_token) > MAX_LOGOUT_TOKEN_LENGTH:
        BACKCHANNEL_LOGOUT.labels(outcome="missing_token").inc()
        raise SignInError("The logout_token parameter is missing.", code="invalid_request")
    try:
        ctx = svc.idp.current()
        metadata = ctx.metadata()
        claims = validate_logout_token(
            logout_token,
            metadata=metadata,
            jwks=ctx.jwks,
            client_id=ctx.settings.client_id,
            leeway_seconds=ctx.settings.clock_skew_seconds,
            seen_jti=_seen_jti(svc, metadata.issuer),
        )
    except IdPNotConfigured as exc:
        BACKCHANNEL_LOGOUT.labels(outcome="not_configured").inc()
        raise SignInError(exc.detail, code="idp_not_configured") from exc
    except IdPUnavailableError as exc:
        BACKCHANNEL_LOGOUT.labels(outcome="idp_unavailable").inc()
        IDP_UNAVAILABLE.labels(step="backchannel_logout").inc()
        raise SignInError(
            "The identity provider's keys cannot be fetched right now.",
            code="idp_unavailable",
            status=503,
        ) from exc
    except OIDCError as exc:
        BACKCHANNEL_LOGOUT.labels(outcome=exc.error).inc()
        raise SignInError(exc.description, code=exc.error) from exc
    ended = _end_sessions(svc, metadata.issuer, claims.get("sid"), claims.get("sub"))
    BACKCHANNEL_LOGOUT.labels(outcome="ok").inc()
    return ended


def _end_sessions(svc: SignInServices, issuer: str, sid: object, sub: object) -> int:
    """Revoke the live sessions of ``issuer`` named by ``sid`` and/or ``sub``; audited."""
    with svc.db.session() as db:
        stmt = select(SessionRow).where(
            SessionRow.revoked_at.is_(None), SessionRow.idp_issuer == issuer
        )
        if sid is not None:
            stmt = stmt.where(SessionRow.idp_sid == sid)
        if sub is not None:
            stmt = stmt.where(SessionRow.idp_subject == sub)
        rows = list(db.scalars(stmt))
        now = utcnow()
        for row in rows:
            row.revoked_at = now
            row.revoked_reason = "backchannel_logout"
        audit.record(
            db,
            Actor.system("idp"),
            "logout.backchannel",
            details={"sessions_ended": len(rows), "by": "sid" if sid is not None else "sub"},
        )
    return len(rows)
