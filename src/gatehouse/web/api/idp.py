"""IdP configuration and activation API: ``GET/PUT /api/v1/idp`` (ETag / If-Match), test,
activate, deactivate. The client secret is write-only: reads say only whether it is set."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field

from gatehouse.domain import activation, idp_checks
from gatehouse.domain.idp import StoredConfig, etag_of, load_config, parse_if_match, save_config
from gatehouse.domain.idp_settings import IdPOptionsBase, IdPSettingsBase
from gatehouse.domain.idp_state import get_state
from gatehouse.runtime import Runtime
from gatehouse.web.api.schemas import error_responses
from gatehouse.web.deps import CurrentAdmin, RuntimeDep, actor_of

router = APIRouter(prefix="/api/v1/idp", tags=["idp"])
ERRORS = error_responses(400, 401, 403, 409, 412)


class IdPConfigIn(IdPSettingsBase):
    """The settings' shape plus the write-only secrets (unknown fields are refused)."""

    client_secret: str | None = Field(
        default=None, max_length=1024, description="Write-only; omit to keep the current one"
    )
    private_key_jwk: str | None = Field(
        default=None,
        max_length=20_000,
        description="For private_key_jwt: the private JWK as JSON (write-only)",
    )


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str


class LastTestOut(BaseModel):
    version: int | None
    ok: bool
    at: datetime | None
    checks: list[CheckOut]


class IdPConfigOut(IdPOptionsBase):
    """The settings' shape without secrets; before the first save ``version`` and the three
    names are null and the options show the defaults a save would store."""

    version: int | None
    active: bool
    display_name: str | None = None
    issuer: str | None = None
    client_id: str | None = None
    client_secret_set: bool = False
    private_key_set: bool = False
    last_test: LastTestOut | None = None


class TestOut(BaseModel):
    ok: bool
    version: int
    checks: list[CheckOut]


class ActiveOut(BaseModel):
    active: bool


def _out(rt: Runtime, stored: StoredConfig | None) -> IdPConfigOut:
    with rt.db.session() as db:
        state = get_state(db)
        active = state.active
        last = LastTestOut(
            version=state.last_test_version,
            ok=state.last_test_ok,
            at=state.last_test_at,
            checks=[CheckOut(**c) for c in state.last_test_report or []],
        )
    if stored is None:
        return IdPConfigOut(version=None, active=active)
    data = stored.settings.model_dump()
    return IdPConfigOut(
        version=stored.version,
        active=active,
        client_secret_set=stored.client_secret_set,
        private_key_set=stored.private_key_set,
        last_test=last if last.version == stored.version else None,
        **data,
    )


def _load(rt: Runtime) -> StoredConfig | None:
    with rt.db.session() as db:
        return load_config(db, allow_insecure_http=rt.settings.allow_insecure_http)


@router.get("", response_model=IdPConfigOut, responses=ERRORS, summary="The IdP configuration")
def get_idp(response: Response, rt: RuntimeDep, _admin: CurrentAdmin) -> IdPConfigOut:
    stored = _load(rt)
    response.headers["ETag"] = etag_of(stored.version if stored else None)
    return _out(rt, stored)


@router.put(
    "",
    response_model=IdPConfigOut,
    responses=ERRORS,
    summary="Save a new version of the IdP configuration (If-Match: the ETag you edited)",
)
def put_idp(
    body: IdPConfigIn,
    request: Request,
    response: Response,
    rt: RuntimeDep,
    admin: CurrentAdmin,
    if_match: str | None = Header(default=None),
) -> IdPConfigOut:
    data = body.model_dump(exclude={"client_secret", "private_key_jwk"})
    with rt.db.session() as db:
        stored = save_config(
            db,
            actor_of(request, admin),
            data,
            box=rt.box,
            allow_insecure_http=rt.settings.allow_insecure_http,
            if_match=parse_if_match(if_match),
            client_secret=body.client_secret,
            private_key_jwk=body.private_key_jwk,
        )
    response.headers["ETag"] = etag_of(stored.version)
    return _out(rt, stored)


@router.post(
    "/test",
    response_model=TestOut,
    responses=ERRORS,
    summary="Test the current configuration against the IdP; the result is kept per version",
)
def test_idp(request: Request, rt: RuntimeDep, admin: CurrentAdmin) -> TestOut:
    ctx = rt.idp.current()
    report = idp_checks.run_checks(ctx, public_url=rt.settings.public_url)
    with rt.db.session() as db:
        idp_checks.record_report(db, actor_of(request, admin), report)
    return TestOut(
        ok=report.ok,
        version=report.version,
        checks=[CheckOut(name=c.name, ok=c.ok, detail=c.detail) for c in report.checks],
    )


@router.post(
    "/activate",
    response_model=ActiveOut,
    responses=ERRORS,
    summary="Activate OIDC sign-in (409 activation_refused names every failed precondition)",
)
def activate_idp(request: Request, rt: RuntimeDep, admin: CurrentAdmin) -> ActiveOut:
    activation.activate(rt.db.session, actor_of(request, admin))
    rt.users.invalidate()
    return ActiveOut(active=True)


@router.post(
    "/deactivate",
    response_model=ActiveOut,
    responses=ERRORS,
    summary="Deactivate OIDC sign-in (local admins only); password sign-in works again",
)
def deactivate_idp(request: Request, rt: RuntimeDep, admin: CurrentAdmin) -> ActiveOut:
    with rt.db.session() as db:
        activation.deactivate(db, actor_of(request, admin))
    rt.users.invalidate()
    return ActiveOut(active=False)
