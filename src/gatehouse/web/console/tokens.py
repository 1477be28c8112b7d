"""The ``/tokens`` console page: your API tokens — create (secret shown once), list, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gatehouse.domain import api_tokens
from gatehouse.domain.errors import DomainError
from gatehouse.web.api.tokens import creator_scopes
from gatehouse.web.console.forms import ConsoleUser, Form, field
from gatehouse.web.deps import RowId, RuntimeDep, actor_of
from gatehouse.web.principal import Principal
from gatehouse.web.templating import redirect_with_flash, render

router = APIRouter(include_in_schema=False)
LIFETIMES = (7, 30, 90, 365)


def _page(
    request: Request,
    rt: Any,
    principal: Principal,
    *,
    created: api_tokens.NewToken | None = None,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    with rt.db.session() as db:
        rows = api_tokens.list_tokens(db, user_id=principal.user.id)
        db.expunge_all()
    response = render(
        request,
        "tokens.html",
        {
            "title": "API tokens",
            "rows": rows,
            "created": created,
            "error": error,
            "values": values or {"name": "", "days": 30, "scopes": ["read"]},
            "lifetimes": LIFETIMES,
            "can_admin": principal.user.is_admin,
            "is_active": api_tokens.is_active,
        },
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/tokens")
def tokens_page(request: Request, principal: ConsoleUser, rt: RuntimeDep) -> Response:
    return _page(request, rt, principal)


@router.post("/tokens")
def create_token(request: Request, form: Form, principal: ConsoleUser, rt: RuntimeDep) -> Response:
    scopes = [s for s in api_tokens.SCOPES if form.get(f"scope_{s}") == "on"]
    days_raw = field(form, "days")
    name = field(form, "name")
    values: dict[str, Any] = {"name": name, "days": days_raw, "scopes": scopes}
    try:
        days = int(days_raw)
    except ValueError:
        return _page(
            request, rt, principal, error="Choose a lifetime.", values=values, status_code=400
        )
    try:
        with rt.db.session() as db:
            created = api_tokens.create_token(
                db,
                actor_of(request, principal),
                user_id=principal.user.id,
                name=name,
                scopes=scopes,
                allowed_scopes=creator_scopes(principal),
                expires_in_days=days,
            )
            db.flush()
            db.refresh(created.token)
            db.expunge(created.token)
    except DomainError as exc:
        return _page(
            request,
            rt,
            principal,
            error=exc.detail,
            values=values,
            status_code=exc.status if exc.status < 500 else 400,
        )
    return _page(request, rt, principal, created=created, status_code=201)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(
    token_id: RowId, request: Request, form: Form, principal: ConsoleUser, rt: RuntimeDep
) -> Response:
    with rt.db.session() as db:
        token = api_tokens.revoke_token(
            db, actor_of(request, principal), token_id, owner_id=principal.user.id
        )
        name = token.name
    rt.api_tokens.forget()
    return redirect_with_flash(
        request, "/tokens", f"Revoked the token “{name}”. It stops working within seconds."
    )
