"""Console pages for IT users: list with search/sort/pagination, create, detail and actions."""

from __future__ import annotations

from math import ceil
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gatehouse.domain import users
from gatehouse.domain.errors import DomainError, InvalidInput
from gatehouse.domain.idp_state import password_policy
from gatehouse.store.models import Environment, User
from gatehouse.web.console.forms import ConsoleAdmin, Form, field
from gatehouse.web.deps import RowId, RuntimeDep, actor_of
from gatehouse.web.templating import redirect_with_flash, render

router = APIRouter(include_in_schema=False)
PER_PAGE = 25


class _AtLeast(int):
    """A page count known only as a lower bound: compares as a number, shows as "N+"."""

    def __str__(self) -> str:
        return f"{int(self)}+"


def _pages(found: users.UserSearch, page: int) -> int:
    """Pages to offer: exact when the total is; else at least one past the current full page."""
    counted = max(1, ceil(found.total / PER_PAGE))
    if found.exact:
        return counted
    return _AtLeast(max(counted, page + (1 if len(found.items) == PER_PAGE else 0)))


@router.get("/users")
def user_list(
    request: Request,
    admin: ConsoleAdmin,
    rt: RuntimeDep,
    q: str = "",
    sort: str = "username",
    status: str = "",
    page: int = 1,
) -> Response:
    page = max(1, min(page, 1_000_000))
    if sort.lstrip("-") not in ("username", "email", "created_at", "last_sign_in_at"):
        sort = "username"
    with rt.db.session() as db:
        found = users.search_users(
            db,
            q=q[:150] or None,
            status=status if status in ("active", "disabled") else None,
            sort=sort,
            page=page,
            per_page=PER_PAGE,
        )
        policy = password_policy(db)
        rows = [(u, users.effective_roles(u)) for u in found.items]
        return render(
            request,
            "users.html",
            {
                "title": "Users",
                "rows": rows,
                "total": found.total if found.exact else f"more than {found.total:,}",
                "page": page,
                "pages": _pages(found, page),
                "q": q,
                "sort": sort,
                "status": status,
                "oidc_active": policy.oidc_active,
                "idp_name": policy.idp_name,
            },
        )


def _environments(rt: Any) -> list[str]:
    with rt.db.session() as db:
        from sqlalchemy import select

        return list(db.scalars(select(Environment.name).order_by(Environment.name)))


def _new_page(
    request: Request,
    rt: Any,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    with rt.db.session() as db:
        policy = password_policy(db)
    return render(
        request,
        "user_new.html",
        {
            "title": "New user",
            "values": values,
            "errors": errors,
            "oidc_active": policy.oidc_active,
            "idp_name": policy.idp_name,
            "admin_password_reason": policy.reason(local_admin=False),
        },
        status_code=status_code,
    )


@router.get("/users/new")
def user_new(request: Request, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    return _new_page(request, rt, {}, {})


_FIELD_OF_CODE = {
    "invalid_username": "username",
    "username_taken": "username",
    "invalid_email": "email",
    "weak_password": "password",
    "password_not_allowed": "password",
}


@router.post("/users/new")
def user_create(request: Request, form: Form, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    values = {k: field(form, k) for k in ("username", "email", "display_name", "role")}
    local_admin = form.get("local_admin") == "on"
    values["local_admin"] = "on" if local_admin else ""
    password = form.get("password")
    pw = password if isinstance(password, str) and password != "" else None
    role = values["role"]
    grants = [users.RoleGrant(role)] if role in users.ROLE_NAMES else []
    try:
        with rt.db.session() as db:
            user = users.create_user(
                db,
                actor_of(request, admin),
                username=values["username"],
                email=values["email"] or None,
                display_name=values["display_name"] or None,
                password=pw,
                local_admin=local_admin,
                roles=grants,
            )
            user_id, name = user.id, user.username
    except DomainError as exc:
        key = _FIELD_OF_CODE.get(exc.code, "form")
        return _new_page(
            request, rt, values, {key: exc.detail}, exc.status if exc.status < 500 else 400
        )
    return redirect_with_flash(request, f"/users/{user_id}", f"User {name} created.")


def _detail(
    request: Request,
    rt: Any,
    user_id: RowId,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with rt.db.session() as db:
        user = users.get_user(db, user_id)
        policy = password_policy(db)
        last_admin = (
            user.local_admin and user.status == "active" and users.enabled_local_admins(db) <= 1
        )
        from sqlalchemy import select

        envs = list(db.scalars(select(Environment.name).order_by(Environment.name)))
        return render(
            request,
            "user_detail.html",
            {
                "title": user.username,
                "u": user,
                "roles": users.effective_roles(user),
                "assignments": [
                    (a.role.name, a.environment.name if a.environment else "")
                    for a in user.assignments
                ],
                "password_reason": policy.reason(local_admin=user.local_admin),
                "idp_name": policy.idp_name,
                "oidc_active": policy.oidc_active,
                "last_admin": last_admin,
                "errors": errors or {},
                "environments": envs,
                "role_names": users.ROLE_NAMES,
            },
            status_code=status_code,
        )


@router.get("/users/{user_id}")
def user_detail(request: Request, user_id: RowId, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    return _detail(request, rt, user_id)


def _act(
    request: Request, rt: Any, user_id: RowId, action: Any, done: str, error_field: str
) -> Response:
    try:
        with rt.db.session() as db:
            user: User = users.get_user(db, user_id)
            action(db, user)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _detail(
            request, rt, user_id, {error_field: exc.detail}, exc.status if exc.status < 500 else 400
        )
    rt.users.invalidate(user_id)
    return redirect_with_flash(request, f"/users/{user_id}", done)


@router.post("/users/{user_id}/profile")
def user_profile(
    request: Request, user_id: RowId, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    def action(db: Any, user: User) -> None:
        users.update_user(
            db,
            actor_of(request, admin),
            user,
            email=field(form, "email") or None,
            display_name=field(form, "display_name"),
            fields_set=frozenset({"email", "display_name"}),
        )

    return _act(request, rt, user_id, action, "Profile saved.", "profile")


@router.post("/users/{user_id}/status")
def user_status(
    request: Request, user_id: RowId, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    wanted = field(form, "status")

    def action(db: Any, user: User) -> None:
        if wanted not in ("active", "disabled"):
            raise InvalidInput("Choose active or disabled.")
        users.update_user(
            db,
            actor_of(request, admin),
            user,
            status=wanted,  # type: ignore[arg-type]
            fields_set=frozenset({"status"}),
        )

    label = "enabled" if wanted == "active" else "disabled"
    return _act(request, rt, user_id, action, f"User {label}.", "status")


@router.post("/users/{user_id}/local-admin")
def user_local_admin(
    request: Request, user_id: RowId, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    wanted = field(form, "local_admin") == "on"

    def action(db: Any, user: User) -> None:
        users.update_user(
            db,
            actor_of(request, admin),
            user,
            local_admin=wanted,
            fields_set=frozenset({"local_admin"}),
        )

    return _act(
        request,
        rt,
        user_id,
        action,
        "Now a local admin." if wanted else "No longer a local admin.",
        "status",
    )


@router.post("/users/{user_id}/password")
def user_password(
    request: Request, user_id: RowId, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    password = form.get("password")

    def action(db: Any, user: User) -> None:
        if password != form.get("confirm_password"):
            raise InvalidInput("The two passwords are not the same.")
        users.set_password(
            db,
            actor_of(request, admin),
            user,
            str(password or ""),
            must_change=admin.user.id != user.id,
        )

    return _act(request, rt, user_id, action, "Password set.", "password")


@router.post("/users/{user_id}/roles")
def user_roles(
    request: Request, user_id: RowId, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    grants: list[users.RoleGrant] = []
    for item in form.getlist("grant"):
        if isinstance(item, str) and item:
            role, _, env = item.partition("@")
            grants.append(users.RoleGrant(role, env or None))
    new_role = field(form, "new_role")
    if new_role:
        grants.append(users.RoleGrant(new_role, field(form, "new_environment") or None))

    def action(db: Any, user: User) -> None:
        users.set_roles(db, actor_of(request, admin), user, grants)

    return _act(request, rt, user_id, action, "Roles saved.", "roles")


@router.get("/users/{user_id}/delete")
def user_delete_confirm(
    request: Request, user_id: RowId, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    with rt.db.session() as db:
        user = users.get_user(db, user_id)
        return render(
            request,
            "confirm.html",
            {
                "title": f"Delete {user.username}?",
                "message": f"Delete the user {user.username}? Their sessions end at once and "
                "this cannot be undone. The audit log keeps their history.",
                "action": f"/users/{user_id}/delete",
                "confirm_label": "Delete user",
                "cancel": f"/users/{user_id}",
            },
        )


@router.post("/users/{user_id}/delete")
def user_delete(
    request: Request, user_id: RowId, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    try:
        with rt.db.session() as db:
            user = users.get_user(db, user_id)
            name = user.username
            users.delete_user(db, actor_of(request, admin), user)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _detail(request, rt, user_id, {"status": exc.detail}, exc.status)
    rt.users.invalidate(user_id)
    return redirect_with_flash(request, "/users", f"User {name} deleted.")
