"""Who am I — for every signed-in caller."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter, Request
from starlette.responses import Response

from gatehouse.domain import passwords, users
from gatehouse.domain.errors import Unauthenticated
from gatehouse.domain.user_cache import UserSnapshot
from gatehouse.web.api.schemas import ErrorBody, MeOut, OwnPasswordIn
from gatehouse.web.deps import CurrentUser, DbDep, RuntimeDep, actor_of, current_user

router = APIRouter(prefix="/api/v1", tags=["me"])


@router.get("/me", response_model=MeOut, responses={401: {"model": ErrorBody}})
async def me(request: Request) -> Response:
    """Hot path: authentication is called directly (no dependency tree) and the body is
    serialised once per user snapshot — every tool calls this on start."""
    principal = await current_user(request)
    return Response(_me_json(principal.user, principal.method), media_type="application/json")


@lru_cache(maxsize=4096)
def _me_json(user: UserSnapshot, method: str) -> bytes:
    return MeOut.of(user, method).model_dump_json().encode()


@router.put(
    "/me/password",
    status_code=204,
    responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="Change your own password (where the password policy allows it)",
)
def change_own_password(
    body: OwnPasswordIn, request: Request, principal: CurrentUser, rt: RuntimeDep, db: DbDep
) -> None:
    user = users.get_user(db, principal.user.id)
    if not passwords.verify_password(user.password_hash, body.current_password):
        raise Unauthenticated("The current password is not correct.", code="invalid_credentials")
    users.set_password(db, actor_of(request, principal), user, body.new_password)
    db.flush()
    rt.users.invalidate(user.id)
    rt.initial_password_changed(db, user.id)
