"""Who am I — for every signed-in caller."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gatehouse.domain import passwords, users
from gatehouse.domain.errors import Unauthenticated
from gatehouse.web.api.schemas import ErrorBody, MeOut, OwnPasswordIn
from gatehouse.web.deps import CurrentUser, DbDep, RuntimeDep, actor_of

router = APIRouter(prefix="/api/v1", tags=["me"])


@router.get("/me", response_model=MeOut, responses={401: {"model": ErrorBody}})
def me(principal: CurrentUser) -> MeOut:
    return MeOut.of(principal.user, principal.method)


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
