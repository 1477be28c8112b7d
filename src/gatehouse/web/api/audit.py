"""The audit log, read-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gatehouse.domain import audit
from gatehouse.web.api.schemas import AuditOut, AuditPage, ErrorBody
from gatehouse.web.deps import MAX_BIG_ID, CurrentAdmin, DbDep

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get(
    "/audit",
    response_model=AuditPage,
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
    summary="Audit events, newest first; page with before_id",
)
def list_audit(
    db: DbDep,
    _admin: CurrentAdmin,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=150)] = None,
    outcome: Annotated[str | None, Query(pattern="^(success|failure)$")] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_BIG_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    stmt = audit.query(action=action, actor=actor, outcome=outcome, q=q, before_id=before_id)
    rows = list(db.scalars(stmt.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(
        items=[AuditOut.model_validate(r, from_attributes=True) for r in rows],
        next_before_id=rows[-1].id if more and rows else None,
    )
