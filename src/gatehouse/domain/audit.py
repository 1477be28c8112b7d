"""The append-only audit log: who did what, when, from where, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from gatehouse.store.models import AuditEvent, User


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, a system process, or an anonymous caller (by address)."""

    user_id: int | None
    name: str
    ip: str | None = None
    local_admin: bool = False
    is_admin: bool = False

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(user_id=None, name=name)

    @classmethod
    def anonymous(cls, ip: str | None) -> Actor:
        return cls(user_id=None, name="anonymous", ip=ip)

    @classmethod
    def of(cls, user: User, ip: str | None, *, is_admin: bool = False) -> Actor:
        return cls(user.id, user.username, ip, local_admin=user.local_admin, is_admin=is_admin)


def record(
    db: Session,
    actor: Actor,
    action: str,
    *,
    outcome: str = "success",
    target_type: str | None = None,
    target_id: str | int | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit row to the current unit of work (committed with the change it describes)."""
    event = AuditEvent(
        actor_id=actor.user_id,
        actor=actor.name,
        action=action,
        outcome=outcome,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        ip=actor.ip,
        reason=reason,
        details=details or {},
    )
    db.add(event)
    return event


def record_now(db_factory: Any, actor: Actor, action: str, **kwargs: Any) -> None:
    """Record in its own transaction — for failures whose own transaction is rolled back."""
    with db_factory() as db:
        record(db, actor, action, **kwargs)


def query(
    *,
    action: str | None = None,
    actor: str | None = None,
    outcome: str | None = None,
    q: str | None = None,
    before_id: int | None = None,
    since: datetime | None = None,
) -> Select[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc())
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if actor:
        stmt = stmt.where(func.lower(AuditEvent.actor) == actor.casefold())
    if outcome:
        stmt = stmt.where(AuditEvent.outcome == outcome)
    if before_id:
        stmt = stmt.where(AuditEvent.id < before_id)
    if since:
        stmt = stmt.where(AuditEvent.at >= since)
    if q:
        like = f"%{q.lower()}%"
        # the target user's name too: "alice" finds what was done *to* alice, not only by her
        target_users = select(cast(User.id, String)).where(func.lower(User.username).like(like))
        stmt = stmt.where(
            or_(
                func.lower(AuditEvent.action).like(like),
                func.lower(AuditEvent.actor).like(like),
                func.lower(func.coalesce(AuditEvent.reason, "")).like(like),
                func.lower(func.coalesce(AuditEvent.target_id, "")).like(like),
                and_(AuditEvent.target_type == "user", AuditEvent.target_id.in_(target_users)),
            )
        )
    return stmt


def target_names(db: Session, events: list[AuditEvent]) -> dict[str, str]:
    """The current username of every user that ``events`` target (one query), by target id."""
    ids = {
        int(target)
        for e in events
        if e.target_type == "user" and (target := e.target_id or "").isdigit()
    }
    if not ids:
        return {}
    rows = db.execute(select(User.id, User.username).where(User.id.in_(ids)))
    return {str(user_id): name for user_id, name in rows}
