"""The change feed environments sync from: every write to synced data appends a revision."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.store.models import ChangeLog


def touch(db: Session, entity: str, entity_id: str | int) -> None:
    """Record that ``entity`` ``entity_id`` changed; environments pick it up on their next pull."""
    db.add(ChangeLog(entity=entity, entity_id=str(entity_id)))


def latest_revision(db: Session) -> int:
    return int(db.scalar(select(func.coalesce(func.max(ChangeLog.revision), 0))) or 0)
