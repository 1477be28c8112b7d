"""Console side of the sync protocol: what an environment gets for ``since=REV``.

The cost of an incremental page is one indexed range scan of ``change_log`` plus loading exactly
the changed users — it does not grow with the size of the directory. A full snapshot (users paged
by id) is sent only when the environment has nothing yet (``since`` absent), or when ``since``
is older than the retained feed or newer than the console has (a restored console database).

The IdP configuration is not versioned through the change log: each page carries a fingerprint
of the current configuration and the configuration itself only when the environment's
fingerprint differs, so it reaches environments however the configuration was changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gatehouse import PROTOCOL_VERSION
from gatehouse.domain import changes, idp_state
from gatehouse.domain.crypto import EncryptionContext, SecretBox
from gatehouse.store.models import ChangeLog, Environment, User

#: Changed entities per incremental page, users per full-snapshot page.
PAGE_SIZE = 1000
#: How long the console keeps change-log rows; an environment further behind gets a snapshot.
RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class Page:
    """One response of ``GET /api/v1/sync/changes``; ``None`` from :func:`build` = unchanged."""

    body: dict[str, Any]


def environment_of(env: Environment) -> dict[str, Any]:
    return {"id": env.id, "name": env.name, "base_url": env.base_url, "kind": env.kind}


def user_of(user: User, environment_id: int) -> dict[str, Any]:
    """A user as an environment needs it: its global roles and those of this environment only.

    The password hash travels so that break-glass local admins (and, while OIDC is off, anyone
    with a password) can sign in on an environment whose console or IdP is down; it is an
    argon2id hash, sent over TLS to a credentialed environment only.
    """
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "status": user.status,
        "local_admin": user.local_admin,
        "password_hash": user.password_hash,
        "must_change_password": user.must_change_password,
        "idp_issuer": user.idp_issuer,
        "idp_subject": user.idp_subject,
        "created_at": user.created_at.isoformat(),
        "roles": sorted(
            (
                {"role": a.role.name, "environment_id": a.environment_id}
                for a in user.assignments
                if a.environment_id is None or a.environment_id == environment_id
            ),
            key=lambda r: (r["environment_id"] or 0, r["role"]),
        ),
    }


def idp_fingerprint(db: Session) -> str:
    """Changes whenever anything an environment copies of the IdP configuration changes."""
    state = idp_state.get_state(db)
    config = idp_state.current_config(db)
    material: list[Any] = [state.current_version, state.active]
    if config is not None:
        material += [
            config.version,
            config.data,
            hashlib.sha256(config.client_secret_enc or b"").hexdigest(),
            hashlib.sha256(config.private_key_jwk_enc or b"").hexdigest(),
        ]
    raw = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def idp_payload(db: Session, box: SecretBox) -> dict[str, Any]:
    """The current IdP configuration with its secrets in clear (TLS protects them in transit;
    the environment re-encrypts them under its own key)."""
    state = idp_state.get_state(db)
    config = idp_state.current_config(db)
    body: dict[str, Any] = {
        "state": {
            "current_version": state.current_version,
            "active": state.active,
            "changed_at": state.changed_at.isoformat() if state.changed_at else None,
            "changed_by": state.changed_by,
        },
        "config": None,
    }
    if config is not None:
        body["config"] = {
            "version": config.version,
            "created_at": config.created_at.isoformat(),
            "created_by": config.created_by,
            "data": config.data,  # IdPSettings.as_dict(), as saved (domain/idp_settings.py)
            "client_secret": box.decrypt_optional(
                config.client_secret_enc, context=EncryptionContext.IDP_CLIENT_SECRET
            ),
            "private_key_jwk": box.decrypt_optional(
                config.private_key_jwk_enc, context=EncryptionContext.IDP_PRIVATE_KEY
            ),
        }
    return body


def needs_snapshot(db: Session, since: int | None) -> bool:
    if since is None:
        return True
    latest = changes.latest_revision(db)
    if since > latest:
        return True
    oldest = db.scalar(select(func.min(ChangeLog.revision)))
    return oldest is not None and since < oldest - 1


def _load_users(db: Session, ids: list[int]) -> list[User]:
    return list(db.scalars(select(User).where(User.id.in_(ids)).order_by(User.id))) if ids else []


def build(
    db: Session,
    box: SecretBox,
    env: Environment,
    *,
    since: int | None,
    cursor: int | None = None,
    known_idp: str | None = None,
    page_size: int = PAGE_SIZE,
) -> Page | None:
    """The next page for ``env``; None when it is up to date (the route answers 304)."""
    fingerprint = idp_fingerprint(db)
    body: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "environment": environment_of(env),
        "idp_fingerprint": fingerprint,
        "idp": idp_payload(db, box) if fingerprint != known_idp else None,
        "deleted_users": [],
        "more": False,
        "cursor": None,
    }
    if cursor is not None or needs_snapshot(db, since):
        # Revision first: anything that changes while the pages are read is sent again later.
        revision = changes.latest_revision(db) if cursor is None else int(since or 0)
        rows = list(
            db.scalars(
                select(User).where(User.id > (cursor or 0)).order_by(User.id).limit(page_size)
            )
        )
        more = len(rows) == page_size
        body.update(
            full=True,
            revision=revision,
            users=[user_of(u, env.id) for u in rows],
            more=more,
            cursor=rows[-1].id if more else None,
        )
        return Page(body)
    assert since is not None
    entries = list(
        db.execute(
            select(ChangeLog.revision, ChangeLog.entity, ChangeLog.entity_id)
            .where(ChangeLog.revision > since)
            .order_by(ChangeLog.revision)
            .limit(page_size)
        )
    )
    if not entries and body["idp"] is None:
        return None
    user_ids = sorted({int(e.entity_id) for e in entries if e.entity == "user"})
    found = _load_users(db, user_ids)
    present = {u.id for u in found}
    body.update(
        full=False,
        revision=entries[-1].revision if entries else since,
        users=[user_of(u, env.id) for u in found],
        deleted_users=[i for i in user_ids if i not in present],
        more=len(entries) == page_size,
    )
    return Page(body)


def prune(db: Session, *, now: datetime | None = None, keep: timedelta = RETENTION) -> int:
    """Drop change-log rows older than ``keep``, always keeping the newest one (revisions must
    never restart, or environments would skip changes)."""
    cutoff = (now or datetime.now(UTC)) - keep
    latest = changes.latest_revision(db)
    result = db.execute(delete(ChangeLog).where(ChangeLog.at < cutoff, ChangeLog.revision < latest))
    return int(getattr(result, "rowcount", 0) or 0)
