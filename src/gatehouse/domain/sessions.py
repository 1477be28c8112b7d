"""Server-side console sessions. The browser holds a random id; the database only its SHA-256.

A session ends at the first of: revocation, the absolute lifetime, or the idle timeout. The last
activity is written at most once a minute so that reads stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from gatehouse.domain.crypto import random_token, sha256_hex
from gatehouse.domain.idp_state import get_state
from gatehouse.store.models import Session as SessionRow
from gatehouse.store.models import User, utcnow

_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionLimits:
    idle: timedelta
    absolute: timedelta


def create_session(
    db: Session,
    user: User,
    *,
    method: str,
    limits: SessionLimits,
    ip: str | None,
    user_agent: str | None,
    replaces: str | None = None,
    **oidc: Any,
) -> tuple[str, SessionRow]:
    """A fresh session (the id is always new: rotated at sign-in). Returns (raw id, row)."""
    if replaces:
        old = db.get(SessionRow, sha256_hex(replaces))
        if old is not None and old.revoked_at is None:
            old.revoked_at = utcnow()
            old.revoked_reason = "rotated"
    raw = random_token(32)
    now = utcnow()
    row = SessionRow(
        id_hash=sha256_hex(raw),
        user_id=user.id,
        method=method,
        created_at=now,
        last_seen_at=now,
        expires_at=now + limits.absolute,
        csrf_secret=random_token(24),
        ip=ip,
        user_agent=(user_agent or "")[:300] or None,
        **oidc,
    )
    db.add(row)
    return raw, row


def load_session(db: Session, raw: str, limits: SessionLimits) -> tuple[SessionRow, User] | None:
    """The live session for a cookie value, or None (and the session is ended if it expired)."""
    if not raw or len(raw) > 128:
        return None
    row = db.get(SessionRow, sha256_hex(raw))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    reason = None
    if now >= row.expires_at:
        reason = "expired"
    elif now - row.last_seen_at >= limits.idle:
        reason = "idle_timeout"
    user = db.get(User, row.user_id)
    if reason is None and (user is None or user.status != "active"):
        reason = "user_disabled"
    if (
        reason is None
        and row.method == "password"
        and user is not None
        and not user.local_admin
        and get_state(db).active
    ):
        reason = "password_not_allowed"
    if reason is not None:
        row.revoked_at = now
        row.revoked_reason = reason
        return None
    assert user is not None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
    return row, user


@dataclass(frozen=True)
class EndedSession:
    """A session cookie whose session has ended: why, and whose (for the sign-in page's notice
    and for keeping what a form held, ``web/console/forms.py``)."""

    reason: str
    user_id: int
    csrf_secret: str


#: reasons a browser is told about on the sign-in page (others: the browser itself signed out,
#: or the id was rotated at sign-in)
TOLD_REASONS = frozenset(
    {
        "idle_timeout",
        "expired",
        "user_disabled",
        "password_not_allowed",
        "backchannel_logout",
        "idp_refused_refresh",
        "invalid_refreshed_id_token",
        "idp_changed",
        "idp_not_configured",
        "tokens_unreadable",
    }
)


def ended_session(db: Session, raw: str) -> EndedSession | None:
    """Why the session of this cookie value ended, while its row is still kept (housekeeping
    deletes ended sessions after a day); None for an unknown cookie or a live session."""
    if not raw or len(raw) > 128:
        return None
    row = db.get(SessionRow, sha256_hex(raw))
    if row is None or row.revoked_at is None or row.revoked_reason not in TOLD_REASONS:
        return None
    return EndedSession(row.revoked_reason, row.user_id, row.csrf_secret)


def revoke(db: Session, raw: str, reason: str = "logout") -> SessionRow | None:
    row = db.get(SessionRow, sha256_hex(raw)) if raw else None
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        row.revoked_reason = reason
    return row
