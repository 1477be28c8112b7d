"""Environment side of the sync protocol: apply a feed page to the local database.

The environment keeps the console's ids (users, its own environment row, IdP configuration
versions), so role assignments and sessions line up and a page can be applied idempotently.
Everything in one page — and a whole full snapshot — is applied in the caller's transaction: an
environment never serves half a change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gatehouse.domain import idp_state, users
from gatehouse.domain.crypto import EncryptionContext, SecretBox
from gatehouse.domain.errors import InvalidInput
from gatehouse.domain.idp_settings import IdPSettings
from gatehouse.store.models import Environment, IdPConfig, Role, RoleAssignment, User, scope_key_for

log = logging.getLogger("gatehouse.sync")


class ProtocolError(Exception):
    """The console sent something this environment cannot apply."""


def _dt(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None


def ensure_self(db: Session, descriptor: dict[str, Any]) -> Environment:
    """This environment's own row, with the console's id (role assignments point at it)."""
    env_id = int(descriptor["id"])
    env = db.get(Environment, env_id)
    if env is None:
        db.execute(delete(Environment).where(Environment.name == descriptor["name"]))
        env = Environment(id=env_id, name=descriptor["name"], status="self", versions={}, health={})
        db.add(env)
    env.name = descriptor["name"]
    env.base_url = descriptor["base_url"]
    env.kind = descriptor["kind"]
    db.flush()
    return env


def _upsert_user(
    db: Session, data: dict[str, Any], roles: dict[str, Role], env_id: int
) -> tuple[User, bool]:
    """Returns the user and whether it lost access (disabled here by this change)."""
    user_id = int(data["id"])
    key = users.username_key(data["username"])
    user = db.get(User, user_id)
    if user is None:
        # A row under the same name but another id is stale (deleted and re-created upstream).
        db.execute(delete(User).where(User.username_key == key, User.id != user_id))
        user = User(id=user_id, username_key=key)
        db.add(user)
        was_active = False
    else:
        was_active = user.status == "active"
    user.username = data["username"]
    user.username_key = key
    user.email = data.get("email")
    user.email_key = users.email_key(user.email)
    user.display_name = data.get("display_name") or data["username"]
    user.status = data["status"]
    user.local_admin = bool(data["local_admin"])
    user.password_hash = data.get("password_hash")
    user.must_change_password = bool(data.get("must_change_password"))
    user.idp_issuer = data.get("idp_issuer")
    user.idp_subject = data.get("idp_subject")
    created = _dt(data.get("created_at"))
    if created is not None:
        user.created_at = created
    wanted = {
        (roles[r["role"]].id, r["environment_id"])
        for r in data.get("roles", [])
        if r["role"] in roles and r["environment_id"] in (None, env_id)
    }
    have = {(a.role_id, a.environment_id): a for a in user.assignments}
    for pair, assignment in have.items():
        if pair not in wanted:
            user.assignments.remove(assignment)
    for role_id, environment_id in sorted(wanted - set(have), key=lambda p: (p[1] or 0, p[0])):
        user.assignments.append(
            RoleAssignment(
                role_id=role_id,
                role=db.get(Role, role_id),
                environment_id=environment_id,
                scope_key=scope_key_for(environment_id),
                source="console",
            )
        )
    return user, was_active and user.status != "active"


def apply_users(
    db: Session,
    env_id: int,
    changed: Iterable[dict[str, Any]],
    deleted: Iterable[int] = (),
    *,
    full: bool = False,
) -> list[int]:
    """Apply user changes; returns the ids whose access ended (caches must forget them)."""
    roles = {r.name: r for r in db.scalars(select(Role))}
    changed = list(changed)
    ended: list[int] = []
    gone = {int(i) for i in deleted}
    if full:
        keep = {int(u["id"]) for u in changed}
        gone |= {i for i in db.scalars(select(User.id)) if i not in keep}
    if gone:
        users.end_sessions(db, user_ids=sorted(gone), reason="user_deleted")
        db.execute(delete(User).where(User.id.in_(sorted(gone))))
        ended.extend(sorted(gone))
        db.expire_all()
    for data in changed:
        user, lost = _upsert_user(db, data, roles, env_id)
        if lost:
            db.flush()
            users.end_sessions(db, user_ids=[user.id], reason="user_disabled")
            ended.append(user.id)
    db.flush()
    return ended


def apply_idp(
    db: Session, box: SecretBox, payload: dict[str, Any], *, allow_insecure_http: bool
) -> None:
    """Copy the console's current IdP configuration; secrets re-encrypted under this server's key.

    Configuration rows are immutable versions, so an existing version is replaced only if it
    differs (a console restored from backup may reuse a number).

    ``data`` is the console's :class:`IdPSettings` as stored, checked here against the same model
    under this server's policy. A version that does not pass is copied all the same and logged:
    refusing the page would also hold back user changes (a disabled user must still reach every
    environment), and sign-in through the IdP refuses that version with the same sentence.
    """
    config = payload.get("config")
    if config is not None:
        version = int(config["version"])
        row = db.get(IdPConfig, version)
        if row is None:
            row = IdPConfig(version=version)
            db.add(row)
        row.created_at = _dt(config.get("created_at")) or row.created_at
        row.created_by = config.get("created_by") or "console"
        row.data = dict(config.get("data") or {})
        try:
            IdPSettings.parse(row.data, allow_insecure_http=allow_insecure_http)
        except InvalidInput as exc:
            log.warning(
                "the console's IdP configuration version %s is not valid here (%s: %s); "
                "sign-in through the IdP is refused until a valid version arrives",
                version,
                exc.extra.get("field"),
                exc.detail,
            )
        secret = config.get("client_secret")
        key = config.get("private_key_jwk")
        row.client_secret_enc = box.encrypt_optional(
            secret, context=EncryptionContext.IDP_CLIENT_SECRET
        )
        row.private_key_jwk_enc = box.encrypt_optional(
            key, context=EncryptionContext.IDP_PRIVATE_KEY
        )
        db.flush()
    st = payload.get("state") or {}
    state = idp_state.get_state(db)
    current = st.get("current_version")
    if current is not None and (config is None or int(config["version"]) != int(current)):
        raise ProtocolError("the IdP state points at a configuration that was not sent")
    state.current_version = current
    state.active = bool(st.get("active"))
    state.changed_at = _dt(st.get("changed_at")) or state.changed_at
    state.changed_by = st.get("changed_by")
    db.flush()
