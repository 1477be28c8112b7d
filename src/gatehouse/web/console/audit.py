"""The audit log page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from gatehouse.domain import audit
from gatehouse.web.console.forms import ConsoleAdmin
from gatehouse.web.deps import MAX_BIG_ID, RuntimeDep
from gatehouse.web.templating import render

router = APIRouter(include_in_schema=False)
PER_PAGE = 50


@router.get("/audit")
def audit_page(
    request: Request,
    admin: ConsoleAdmin,
    rt: RuntimeDep,
    q: str = "",
    outcome: str = "",
    before_id: Annotated[int | None, Query(ge=1, le=MAX_BIG_ID)] = None,
) -> Response:
    with rt.db.session() as db:
        stmt = audit.query(
            q=q[:100] or None,
            outcome=outcome if outcome in ("success", "failure") else None,
            before_id=before_id,
        )
        rows = list(db.scalars(stmt.limit(PER_PAGE + 1)))
        names = audit.target_names(db, rows)
    more = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    return render(
        request,
        "audit.html",
        {
            "title": "Audit log",
            "rows": rows,
            "names": names,
            "q": q,
            "outcome": outcome,
            "before_id": before_id,
            "next_before_id": rows[-1].id if more and rows else None,
        },
    )
