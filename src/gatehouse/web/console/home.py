"""The console's home page (administrators): health at a glance. Others go to their account."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from gatehouse.domain import dashboard
from gatehouse.web import charts
from gatehouse.web.console.forms import ConsoleUser
from gatehouse.web.deps import RuntimeDep
from gatehouse.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, principal: ConsoleUser, rt: RuntimeDep) -> Response:
    if not principal.user.is_admin:
        return RedirectResponse("/account", status_code=303)
    with rt.db.session() as db:
        data = dashboard.home(db)
        return render(
            request,
            "home.html",
            {
                "title": "Overview",
                "home": data,
                "hourly": charts.hourly(data.hours),
                "reasons": charts.by_reason(data.failures),
            },
        )
