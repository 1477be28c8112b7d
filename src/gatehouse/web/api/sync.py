"""``/api/v1/sync``: the HTTP side of the sync protocol (:mod:`gatehouse.sync`).

``console_router`` (console role) serves environments: join, the change feed, heartbeats —
authenticated by the environment credential as a bearer token (``CallerEnvironment`` in
:mod:`gatehouse.web.deps`). ``environment_router`` (environment role) tells operators and tests
how fresh this environment's copy is.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from gatehouse.domain import environments
from gatehouse.sync import feed
from gatehouse.sync.puller import read_status
from gatehouse.web.api.schemas import ErrorBody
from gatehouse.web.deps import CallerEnvironment, DbDep, RuntimeDep

console_router = APIRouter(prefix="/api/v1/sync", tags=["sync"])
environment_router = APIRouter(prefix="/api/v1/sync", tags=["sync"])
ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorBody}, 401: {"model": ErrorBody}}


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    join_token: str = Field(min_length=1, max_length=200)


class EnvironmentOut(BaseModel):
    id: int
    name: str
    base_url: str
    kind: str


class JoinOut(BaseModel):
    credential: str
    environment: EnvironmentOut


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    gatehouse_version: str = Field(max_length=32)
    protocol_version: int = Field(ge=0, le=1_000_000)
    versions: dict[str, str] = Field(default_factory=dict)
    health: dict[str, Any] = Field(default_factory=dict)


class SyncStatusOut(BaseModel):
    role: str
    environment: str | None
    joined: bool
    revision: int | None
    last_success_at: str | None
    seconds_since_sync: float | None
    stale: bool
    last_error: str | None


@console_router.post("/join", response_model=JoinOut, responses=ERRORS)
def join(body: JoinIn, db: DbDep) -> JoinOut:
    """Trade the one-time join token for the environment credential (shown only here)."""
    env, credential = environments.join(db, body.join_token)
    return JoinOut(credential=credential, environment=EnvironmentOut(**feed.environment_of(env)))


@console_router.get(
    "/changes",
    responses={**ERRORS, 304: {"description": "Nothing changed since `since`"}},
)
def changes(
    db: DbDep,
    rt: RuntimeDep,
    env: CallerEnvironment,
    since: Annotated[int | None, Query(ge=0)] = None,
    cursor: Annotated[int | None, Query(ge=0)] = None,
    idp: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The changes after revision ``since`` (a full snapshot when ``since`` is absent or too
    old); 304 when there are none, so an idle environment costs one tiny request per interval."""
    if since is not None and cursor is None:
        environments.seen(env, synced_revision=since)
    page = feed.build(db, rt.box, env, since=since, cursor=cursor, known_idp=idp)
    if page is None:
        return Response(status_code=304)
    return JSONResponse(page.body, headers={"Cache-Control": "no-store"})


@console_router.post("/heartbeat", status_code=204, responses=ERRORS)
def heartbeat(body: HeartbeatIn, db: DbDep, env: CallerEnvironment) -> Response:
    """Versions and health of the calling environment."""
    environments.heartbeat(
        db,
        env,
        environments.Report(
            gatehouse_version=body.gatehouse_version,
            protocol_version=body.protocol_version,
            versions=body.versions,
            health=body.health,
        ),
    )
    feed.prune(db)
    return Response(status_code=204)


@environment_router.get("/status", response_model=SyncStatusOut)
def status(rt: RuntimeDep) -> SyncStatusOut:
    """How fresh this environment's copy of the console is (public: no secrets in it)."""
    with rt.db.session() as db:
        st = read_status(db, rt.settings)
    return SyncStatusOut(**st)
