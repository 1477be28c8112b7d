"""IT users: administrators manage them; the password policy is enforced by the domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from gatehouse.domain import users
from gatehouse.domain.idp_state import password_policy
from gatehouse.store.models import User
from gatehouse.web.api.schemas import (
    PasswordIn,
    RoleOut,
    RolesIn,
    UserCreateIn,
    UserOut,
    UserPage,
    UserUpdateIn,
    error_responses,
)
from gatehouse.web.deps import CurrentAdmin, CurrentUser, DbDep, RowId, RuntimeDep, actor_of

router = APIRouter(prefix="/api/v1", tags=["users"])
ERRORS = error_responses(400, 401, 403, 404, 409)


def _out(db: DbDep, user: User) -> UserOut:
    return UserOut.of(user, policy_reason=password_policy(db).reason(local_admin=user.local_admin))


@router.get("/users", response_model=UserPage, responses=ERRORS)
def list_users(
    db: DbDep,
    _admin: CurrentAdmin,
    q: Annotated[str | None, Query(max_length=150)] = None,
    status: Annotated[str | None, Query(pattern="^(active|disabled)$")] = None,
    sort: Annotated[str, Query(max_length=32)] = "username",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> UserPage:
    found = users.search_users(db, q=q, status=status, sort=sort, page=page, per_page=per_page)
    policy = password_policy(db)
    return UserPage(
        items=[
            UserOut.of(u, policy_reason=policy.reason(local_admin=u.local_admin))
            for u in found.items
        ],
        total=found.total,
        total_is_estimate=not found.exact,
        page=page,
        per_page=per_page,
    )


@router.post("/users", status_code=201, response_model=UserOut, responses=ERRORS)
def create_user(body: UserCreateIn, request: Request, db: DbDep, admin: CurrentAdmin) -> UserOut:
    user = users.create_user(
        db,
        actor_of(request, admin),
        username=body.username,
        email=body.email,
        display_name=body.display_name,
        password=body.password,
        local_admin=body.local_admin,
        roles=[users.RoleGrant(r.role, r.environment) for r in body.roles],
    )
    return _out(db, user)


@router.get("/users/{user_id}", response_model=UserOut, responses=ERRORS)
def get_user(user_id: RowId, db: DbDep, _admin: CurrentAdmin) -> UserOut:
    return _out(db, users.get_user(db, user_id))


@router.patch("/users/{user_id}", response_model=UserOut, responses=ERRORS)
def update_user(
    user_id: RowId,
    body: UserUpdateIn,
    request: Request,
    db: DbDep,
    admin: CurrentAdmin,
    rt: RuntimeDep,
) -> UserOut:
    user = users.get_user(db, user_id)
    users.update_user(
        db,
        actor_of(request, admin),
        user,
        email=body.email,
        display_name=body.display_name,
        status=body.status,
        local_admin=body.local_admin,
        fields_set=frozenset(body.model_fields_set),
    )
    rt.users.invalidate(user_id)
    return _out(db, user)


@router.delete("/users/{user_id}", status_code=204, responses=ERRORS)
def delete_user(
    user_id: RowId, request: Request, db: DbDep, admin: CurrentAdmin, rt: RuntimeDep
) -> Response:
    users.delete_user(db, actor_of(request, admin), users.get_user(db, user_id))
    rt.users.invalidate(user_id)
    return Response(status_code=204)


@router.put("/users/{user_id}/password", status_code=204, responses=ERRORS)
def set_password(
    user_id: RowId,
    body: PasswordIn,
    request: Request,
    db: DbDep,
    admin: CurrentAdmin,
    rt: RuntimeDep,
) -> Response:
    user = users.get_user(db, user_id)
    # An admin setting someone else's password: they must choose a new one at next sign-in.
    users.set_password(
        db, actor_of(request, admin), user, body.password, must_change=admin.user.id != user.id
    )
    if admin.user.id == user.id:
        rt.initial_password_changed(db, user.id)
    rt.users.invalidate(user_id)
    return Response(status_code=204)


@router.put("/users/{user_id}/roles", response_model=UserOut, responses=ERRORS)
def set_roles(
    user_id: RowId,
    body: RolesIn,
    request: Request,
    db: DbDep,
    admin: CurrentAdmin,
    rt: RuntimeDep,
) -> UserOut:
    user = users.get_user(db, user_id)
    users.set_roles(
        db,
        actor_of(request, admin),
        user,
        [users.RoleGrant(r.role, r.environment) for r in body.roles],
    )
    rt.users.invalidate(user_id)
    return _out(db, user)


@router.get("/roles", response_model=list[RoleOut], responses=ERRORS)
def list_roles(db: DbDep, _user: CurrentUser) -> list[RoleOut]:
    return [RoleOut(name=r.name, description=r.description) for r in users.list_roles(db)]
