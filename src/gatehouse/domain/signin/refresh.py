"""Keeping a console session's IdP tokens fresh: :class:`SessionKeeper` (``rt.session_keeper``).

``web.deps.resolve_principal`` calls :meth:`SessionKeeper.check` for every session it loads;
the runtime always builds the keeper, so there is no configuration in which an OIDC session is
not checked against the IdP.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from gatehouse.domain import audit
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import DecryptionError, EncryptionContext
from gatehouse.domain.idp import IdPContext, IdPNotConfigured
from gatehouse.domain.signin.common import SignInServices, expiry, open_claims, seal_claims
from gatehouse.metrics import IDP_UNAVAILABLE, OIDC_REFRESH
from gatehouse.oidc import (
    DiscoveryError,
    IdPUnavailableError,
    OIDCError,
    RefreshRefusedError,
    TokenResponse,
    TokenValidationError,
    VerifiedIDTokenClaims,
    refresh,
    validate_refreshed_id_token,
)
from gatehouse.store.models import Session as SessionRow
from gatehouse.store.models import utcnow

#: refresh the IdP tokens this long before they expire
REFRESH_MARGIN = timedelta(seconds=30)
#: after an IdP outage during a refresh, wait this long before trying again for that session
REFRESH_BACKOFF_SECONDS = 15.0

FreshOutcome = Literal["fresh", "refreshed", "kept", "ended", "reauth"]
#: refresh outcomes audited as ``session.refresh_failed``
REFRESH_FAILURES = frozenset(
    {"idp_refused_refresh", "invalid_refreshed_id_token", "idp_unavailable"}
)


@dataclass(frozen=True)
class _Snapshot:
    id_hash: str
    method: str
    revoked: bool
    idp_issuer: str | None
    id_token_enc: bytes | None
    id_token_claims_enc: bytes | None
    id_token_expires_at: datetime | None
    refresh_token_enc: bytes | None
    access_token_expires_at: datetime | None

    @classmethod
    def of(cls, row: SessionRow) -> _Snapshot:
        return cls(
            id_hash=row.id_hash,
            method=row.method,
            revoked=row.revoked_at is not None,
            idp_issuer=row.idp_issuer,
            id_token_enc=row.id_token_enc,
            id_token_claims_enc=row.id_token_claims_enc,
            id_token_expires_at=row.id_token_expires_at,
            refresh_token_enc=row.refresh_token_enc,
            access_token_expires_at=row.access_token_expires_at,
        )


@dataclass(frozen=True)
class _Update:
    outcome: FreshOutcome
    reason: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


def refresh_due(row: SessionRow | _Snapshot, now: datetime | None = None) -> bool:
    """Whether an OIDC session's IdP tokens are about to expire (cheap: no I/O)."""
    if row.method != "oidc":
        return False
    now = now or utcnow()
    if row.refresh_token_enc is None:
        return row.id_token_expires_at is not None and now >= row.id_token_expires_at
    deadline = row.access_token_expires_at or row.id_token_expires_at
    return deadline is not None and now >= deadline - REFRESH_MARGIN


class SessionKeeper:
    """Refreshes the IdP tokens of console sessions in use (one refresh at a time per session).

    * refresh before expiry; the refreshed ID token must keep ``iss``, ``sub``, ``aud``
      (OIDC Core 12.2) of the verified claims stored at sign-in (or at the last refresh);
    * the IdP refuses (``invalid_grant``) or sends an invalid ID token: the session ends now;
    * the IdP is unreachable: the session is kept (an outage never ends a session early) and
      the refresh is retried after a short back-off;
    * no refresh token: the session lives until the ID token's ``exp`` + the configured grace,
      then the browser re-authenticates (``prompt=none`` first).

    Refresh tokens rotate at many IdPs, so two concurrent refreshes of one session would burn
    the grant: an in-process lock serialises them, and on PostgreSQL the session row is locked
    (``FOR UPDATE``) across the refresh so that replicas serialise too.
    """

    def __init__(self, svc: SignInServices) -> None:
        self._svc = svc
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._retry_at: dict[str, float] = {}
        self._next_unavailable_audit = 0.0

    def _lock(self, id_hash: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 10_000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(id_hash, threading.Lock())

    def check(self, row: SessionRow) -> FreshOutcome:
        """Called on each request of a session; does I/O only when the tokens are due."""
        if not refresh_due(row):
            return "fresh"
        if self._retry_at.get(row.id_hash, 0.0) > time.monotonic():
            return "kept"
        db = self._svc.db
        with self._lock(row.id_hash):
            if not db.is_sqlite:
                with db.session() as s:
                    locked = s.get(SessionRow, row.id_hash, with_for_update=True)
                    if locked is None:
                        return "ended"
                    update = self._plan(_Snapshot.of(locked))
                    self._apply(s, locked, update)
            else:
                with db.session() as s:
                    current = s.get(SessionRow, row.id_hash)
                    snap = _Snapshot.of(current) if current is not None else None
                if snap is None:
                    return "ended"
                update = self._plan(snap)
                with db.session() as s:
                    current = s.get(SessionRow, row.id_hash)
                    if current is not None:
                        self._apply(s, current, update)
        return update.outcome

    def _plan(self, snap: _Snapshot) -> _Update:
        """What to write: a refresh when due and possible, else why the session ends or stays."""
        now = utcnow()
        if snap.revoked:
            return _Update("ended")
        if not refresh_due(snap, now):
            return _Update("fresh")  # another request refreshed it meanwhile
        if snap.refresh_token_enc is None or snap.id_token_enc is None:
            grace = self._grace()
            assert snap.id_token_expires_at is not None
            if now < snap.id_token_expires_at + grace:
                return _Update("fresh")
            OIDC_REFRESH.labels(outcome="reauth_required").inc()
            return _Update("reauth", "reauth_required")
        if snap.id_token_claims_enc is None:
            # a session from before the verified claims were stored: sign in again (silently
            # with prompt=none while the IdP session lasts) rather than trust a re-decoded token
            OIDC_REFRESH.labels(outcome="reauth_required").inc()
            return _Update("reauth", "reauth_required")
        try:
            ctx = self._svc.idp.current()
        except IdPNotConfigured:
            OIDC_REFRESH.labels(outcome="not_configured").inc()
            return _Update("ended", "idp_not_configured")
        if ctx.settings.issuer != snap.idp_issuer:
            OIDC_REFRESH.labels(outcome="issuer_changed").inc()
            return _Update("ended", "idp_changed")
        try:
            refresh_token = self._svc.box.decrypt_str(
                snap.refresh_token_enc, context=EncryptionContext.SESSION_REFRESH_TOKEN
            )
            previous = open_claims(self._svc.box, snap.id_token_claims_enc)
        except (DecryptionError, ValueError):
            OIDC_REFRESH.labels(outcome="unreadable").inc()
            return _Update("ended", "tokens_unreadable")
        return self._refresh(ctx, snap.id_hash, refresh_token, previous, now)

    def _refresh(
        self,
        ctx: IdPContext,
        id_hash: str,
        refresh_token: str,
        previous: VerifiedIDTokenClaims,
        now: datetime,
    ) -> _Update:
        """The refresh grant and the refreshed ID token's checks, each outcome counted."""
        try:
            metadata = ctx.metadata()
            tokens = refresh(ctx.http, metadata, ctx.web_client, refresh_token)
            claims = validate_refreshed_id_token(
                tokens.id_token,
                previous,
                metadata=metadata,
                jwks=ctx.jwks,
                client_id=ctx.settings.client_id,
                leeway_seconds=ctx.settings.clock_skew_seconds,
                access_token=tokens.access_token,
            )
        except RefreshRefusedError:
            OIDC_REFRESH.labels(outcome="refused").inc()
            return _Update("ended", "idp_refused_refresh")
        except TokenValidationError as exc:
            OIDC_REFRESH.labels(outcome=exc.error).inc()
            return _Update("ended", "invalid_refreshed_id_token")
        except (IdPUnavailableError, DiscoveryError):
            OIDC_REFRESH.labels(outcome="idp_unavailable").inc()
            IDP_UNAVAILABLE.labels(step="refresh").inc()
            self._svc.reachability.forget()  # the next sign-in start probes the IdP again
            self._retry_at[id_hash] = time.monotonic() + REFRESH_BACKOFF_SECONDS
            return _Update("kept", "idp_unavailable")
        except OIDCError as exc:
            # another token endpoint answer (e.g. invalid_client after a secret rotation):
            # not a verdict on the user, so the session is kept and the refresh retried later
            OIDC_REFRESH.labels(outcome=exc.error).inc()
            self._retry_at[id_hash] = time.monotonic() + REFRESH_BACKOFF_SECONDS
            return _Update("kept")
        self._retry_at.pop(id_hash, None)
        OIDC_REFRESH.labels(outcome="ok").inc()
        return _Update("refreshed", values=self._refreshed_values(tokens, claims, now))

    def _refreshed_values(
        self, tokens: TokenResponse, claims: VerifiedIDTokenClaims | None, now: datetime
    ) -> dict[str, Any]:
        box = self._svc.box
        values: dict[str, Any] = {}
        if tokens.refresh_token:
            values["refresh_token_enc"] = box.encrypt_str(
                tokens.refresh_token, context=EncryptionContext.SESSION_REFRESH_TOKEN
            )
        if claims is not None and tokens.id_token is not None:
            values["id_token_enc"] = box.encrypt_str(
                tokens.id_token, context=EncryptionContext.SESSION_ID_TOKEN
            )
            values["id_token_claims_enc"] = seal_claims(box, claims)
            values["id_token_expires_at"] = expiry(claims["exp"])
            sid = claims.get("sid")
            if isinstance(sid, str) and len(sid) <= 255:
                values["idp_sid"] = sid
        lifetime = tokens.expires_in
        if lifetime is None and claims is not None:
            lifetime = int(claims["exp"] - time.time())
        values["access_token_expires_at"] = now + timedelta(seconds=max(lifetime or 300, 1))
        return values

    def _grace(self) -> timedelta:
        try:
            return timedelta(seconds=self._svc.idp.current().settings.refresh_grace_seconds)
        except IdPNotConfigured:
            return timedelta(0)

    def _audit_failure(self, db: Session, row: SessionRow, update: _Update) -> None:
        """``session.refresh_failed`` (the console's home page lists them): every refusal,
        which ends its session; an unreachable IdP at most once a minute per process, which
        a busy console would otherwise write on every request of every session."""
        if update.reason not in REFRESH_FAILURES:
            return
        if update.reason == "idp_unavailable":
            now = time.monotonic()
            if now < self._next_unavailable_audit:
                return
            self._next_unavailable_audit = now + 60.0
        audit.record(
            db,
            Actor.system("session"),
            "session.refresh_failed",
            outcome="failure",
            reason=update.reason,
            target_type="user",
            target_id=row.user_id,
            details={"session_ended": update.outcome == "ended"},
        )

    def _apply(self, db: Session, row: SessionRow, update: _Update) -> None:
        self._audit_failure(db, row, update)
        if update.outcome in ("ended", "reauth") and row.revoked_at is None:
            row.revoked_at = utcnow()
            row.revoked_reason = update.reason or "ended"
        for name, value in update.values.items():
            setattr(row, name, value)
