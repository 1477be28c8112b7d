"""Registered apps (administrators) and the unified login URL (public, for app back ends).

The unified login URL route must be included before the users router: ``/users/{user_id}``
would otherwise capture ``/users/unified-login-url`` and answer 422.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gatehouse.domain import apps
from gatehouse.domain.idp_state import get_state
from gatehouse.domain.ratelimit import UNIFIED_LOGIN_URL
from gatehouse.store.models import App
from gatehouse.web.api.schemas import ErrorBody, error_responses
from gatehouse.web.deps import CurrentAdmin, RowId, RuntimeDep, actor_of, rate_limited
from gatehouse.web.redirects import check_return_to

router = APIRouter(prefix="/api/v1", tags=["apps"])
ERRORS = error_responses(400, 401, 403, 404, 409)


class AppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=apps.NAME_MAX)
    allowed_origins: list[str] = Field(
        max_length=apps.MAX_ORIGINS,
        description="Exact origins (https://app.example.com) or URL prefixes users may be "
        "returned to. https only; no wildcards, user info, query or fragment.",
    )


class AppUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=apps.NAME_MAX)
    allowed_origins: list[str] | None = Field(default=None, max_length=apps.MAX_ORIGINS)


class AppOut(BaseModel):
    id: int
    name: str
    allowed_origins: list[str]
    created_at: datetime

    @classmethod
    def of(cls, app: App) -> AppOut:
        return cls(
            id=app.id,
            name=app.name,
            allowed_origins=list(app.allowed_origins),
            created_at=app.created_at,
        )


class UnifiedLoginOut(BaseModel):
    url: str


@router.get(
    "/users/unified-login-url",
    response_model=UnifiedLoginOut,
    responses={400: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    summary="The sign-in URL for a custom app (public): ends at return_to with a session",
    dependencies=[rate_limited(UNIFIED_LOGIN_URL)],  # public: bounded per address
)
def unified_login_url(
    rt: RuntimeDep, return_to: Annotated[str, Query(max_length=apps.URL_MAX)] = ""
) -> UnifiedLoginOut:
    target = check_return_to(rt, return_to)
    with rt.db.session() as db:
        active = get_state(db).active
    return UnifiedLoginOut(
        url=apps.unified_login_url(rt.settings.public_url, target, oidc_active=active)
    )


@router.get("/apps", response_model=list[AppOut], responses=ERRORS)
def list_apps(rt: RuntimeDep, _admin: CurrentAdmin) -> list[AppOut]:
    with rt.db.session() as db:
        return [AppOut.of(a) for a in apps.list_apps(db)]


@router.post("/apps", status_code=201, response_model=AppOut, responses=ERRORS)
def register_app(body: AppIn, request: Request, rt: RuntimeDep, admin: CurrentAdmin) -> AppOut:
    with rt.db.session() as db:
        app = apps.register_app(
            db,
            actor_of(request, admin),
            name=body.name,
            allowed_origins=body.allowed_origins,
            allow_insecure_http=rt.settings.allow_insecure_http,
        )
        out = AppOut.of(app)
    return out


@router.get("/apps/{app_id}", response_model=AppOut, responses=ERRORS)
def get_app(app_id: RowId, rt: RuntimeDep, _admin: CurrentAdmin) -> AppOut:
    with rt.db.session() as db:
        return AppOut.of(apps.get_app(db, app_id))


@router.patch("/apps/{app_id}", response_model=AppOut, responses=ERRORS)
def update_app(
    app_id: RowId, body: AppUpdateIn, request: Request, rt: RuntimeDep, admin: CurrentAdmin
) -> AppOut:
    with rt.db.session() as db:
        app = apps.update_app(
            db,
            actor_of(request, admin),
            apps.get_app(db, app_id),
            name=body.name,
            allowed_origins=body.allowed_origins,
            allow_insecure_http=rt.settings.allow_insecure_http,
        )
        out = AppOut.of(app)
    return out


@router.delete("/apps/{app_id}", status_code=204, responses=ERRORS)
def delete_app(app_id: RowId, request: Request, rt: RuntimeDep, admin: CurrentAdmin) -> Response:
    with rt.db.session() as db:
        apps.delete_app(db, actor_of(request, admin), apps.get_app(db, app_id))
    return Response(status_code=204)
