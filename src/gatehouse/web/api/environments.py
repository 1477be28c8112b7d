"""Environments: register, join tokens, deregister, and the prerequisite report (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from gatehouse.domain import environments
from gatehouse.domain.environments import EnvironmentView
from gatehouse.settings import Settings
from gatehouse.store.models import Environment
from gatehouse.web.api.schemas import Page, StrictModel, error_responses
from gatehouse.web.deps import CurrentAdmin, DbDep, RowId, RuntimeDep, actor_of

router = APIRouter(prefix="/api/v1/environments", tags=["environments"])
ERRORS = error_responses(400, 401, 403, 404, 409)


class EnvironmentIn(StrictModel):
    name: str = Field(max_length=64, description="Unique, lowercase: dev, test, prod …")
    base_url: str = Field(max_length=500, description="The environment server's public URL")
    kind: Literal["dev", "test", "prod", "other"] = "dev"


class FailureOut(BaseModel):
    component: str | None
    reason: str


class EnvironmentOut(BaseModel):
    id: int
    name: str
    base_url: str
    kind: str
    state: str = Field(description="pending (not joined), online, or silent (> 5 min)")
    gatehouse_version: str | None
    protocol_version: int | None
    versions: dict[str, Any]
    health: dict[str, Any]
    last_seen_at: datetime | None
    seconds_since_seen: int | None
    synced_revision: int
    sync_lag: int = Field(description="Feed revisions the environment has not pulled yet")
    ok: bool = Field(description="Meets every prerequisite")
    failing_components: list[str]
    failures: list[FailureOut]

    @classmethod
    def of(cls, v: EnvironmentView) -> EnvironmentOut:
        e = v.env
        return cls(
            id=e.id,
            name=e.name,
            base_url=e.base_url,
            kind=e.kind,
            state=v.state,
            gatehouse_version=e.gatehouse_version,
            protocol_version=e.protocol_version,
            versions=e.versions,
            health=e.health,
            last_seen_at=e.last_seen_at,
            seconds_since_seen=v.seconds_since_seen,
            synced_revision=e.synced_revision,
            sync_lag=v.sync_lag,
            ok=v.ok,
            failing_components=v.failing_components,
            failures=[FailureOut(component=f.component, reason=f.reason) for f in v.failures],
        )


class JoinTokenOut(BaseModel):
    environment: EnvironmentOut
    join_token: str = Field(description="Shown once; only its hash is kept")
    expires_at: datetime
    command: str = Field(description="The command that starts the environment server")


class PrerequisiteEnvOut(BaseModel):
    id: int
    name: str
    ok: bool
    mark: Literal["pass", "fail"]
    failing_components: list[str]
    failures: list[FailureOut]


class PrerequisiteReportOut(BaseModel):
    ok: bool
    minimums: dict[str, str]
    environments: list[PrerequisiteEnvOut]


class MinimumsBody(StrictModel):
    minimums: dict[str, str] = Field(
        description="component -> minimum version; gatehouse_protocol is the sync protocol"
    )


def join_command(settings: Settings, env: Environment, token: str) -> str:
    """What an operator runs on the environment's host (shown with the token, once)."""
    return (
        f"GATEHOUSE_PUBLIC_URL={env.base_url} gatehouse serve --role environment "
        f"--console {settings.public_url} --join-token {token}"
    )


def _view(db: DbDep, env_id: RowId) -> EnvironmentView:
    environments.get(db, env_id)
    return next(v for v in environments.view(db) if v.env.id == env_id)


def _token_out(rt: RuntimeDep, db: DbDep, env: Environment, token: str) -> JoinTokenOut:
    db.flush()
    assert env.join_token_expires_at is not None
    return JoinTokenOut(
        environment=EnvironmentOut.of(_view(db, env.id)),
        join_token=token,
        expires_at=env.join_token_expires_at,
        command=join_command(rt.settings, env, token),
    )


class EnvironmentPage(Page):
    items: list[EnvironmentOut]


@router.get("", response_model=EnvironmentPage, responses=ERRORS)
def list_environments(
    db: DbDep,
    _admin: CurrentAdmin,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> EnvironmentPage:
    """Registered environments by name, paginated like ``GET /api/v1/users``:
    ``{"items", "total", "page", "per_page"}``."""
    views = environments.view(db)
    start = (page - 1) * per_page
    return EnvironmentPage(
        items=[EnvironmentOut.of(v) for v in views[start : start + per_page]],
        total=len(views),
        page=page,
        per_page=per_page,
    )


@router.post("", status_code=201, response_model=JoinTokenOut, responses=ERRORS)
def register(
    body: EnvironmentIn, request: Request, db: DbDep, rt: RuntimeDep, admin: CurrentAdmin
) -> JoinTokenOut:
    """Register an environment; the response carries its one-time join token (valid 1 h)."""
    env, token = environments.register(
        db,
        actor_of(request, admin),
        name=body.name,
        base_url=body.base_url,
        kind=body.kind,
        allow_insecure_http=rt.settings.allow_insecure_http,
    )
    return _token_out(rt, db, env, token)


@router.get("/prerequisites", response_model=PrerequisiteReportOut, responses=ERRORS)
def prerequisite_report(db: DbDep, _admin: CurrentAdmin) -> PrerequisiteReportOut:
    """Each environment with a pass/fail mark and exactly what fails."""
    items = [
        PrerequisiteEnvOut(
            id=v.env.id,
            name=v.env.name,
            ok=v.ok,
            mark="pass" if v.ok else "fail",
            failing_components=v.failing_components,
            failures=[FailureOut(component=f.component, reason=f.reason) for f in v.failures],
        )
        for v in environments.view(db)
    ]
    return PrerequisiteReportOut(
        ok=all(i.ok for i in items),
        minimums=environments.prerequisite_table(db),
        environments=items,
    )


@router.get("/prerequisites/minimums", response_model=MinimumsBody, responses=ERRORS)
def get_minimums(db: DbDep, _admin: CurrentAdmin) -> MinimumsBody:
    return MinimumsBody(minimums=environments.prerequisite_table(db))


@router.put("/prerequisites/minimums", response_model=MinimumsBody, responses=ERRORS)
def put_minimums(
    body: MinimumsBody, request: Request, db: DbDep, admin: CurrentAdmin
) -> MinimumsBody:
    """Replace the table (audited); a component left out is no longer required."""
    environments.set_prerequisites(db, actor_of(request, admin), body.minimums)
    return MinimumsBody(minimums=environments.prerequisite_table(db))


@router.get("/{env_id}", response_model=EnvironmentOut, responses=ERRORS)
def get_environment(env_id: RowId, db: DbDep, _admin: CurrentAdmin) -> EnvironmentOut:
    return EnvironmentOut.of(_view(db, env_id))


@router.post("/{env_id}/join-token", response_model=JoinTokenOut, responses=ERRORS)
def rotate_join_token(
    env_id: RowId, request: Request, db: DbDep, rt: RuntimeDep, admin: CurrentAdmin
) -> JoinTokenOut:
    """A new one-time join token (the previous one stops working)."""
    env = environments.get(db, env_id)
    token = environments.rotate_join_token(db, actor_of(request, admin), env)
    return _token_out(rt, db, env, token)


@router.delete("/{env_id}", status_code=204, responses=ERRORS)
def deregister(env_id: RowId, request: Request, db: DbDep, admin: CurrentAdmin) -> Response:
    """Remove the environment; its credential is refused from now on."""
    environments.deregister(db, actor_of(request, admin), environments.get(db, env_id))
    return Response(status_code=204)
