"""Sign-in page, local password sign-in, sign-out, and the caller's own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from gatehouse.domain import audit, local_auth, passwords, sessions, users
from gatehouse.domain.errors import DomainError
from gatehouse.domain.idp_state import display_name, get_state, password_policy
from gatehouse.domain.ratelimit import SIGN_IN
from gatehouse.domain.signin import logout_url
from gatehouse.metrics import PASSWORD_LOGIN
from gatehouse.web.console.forms import ConsoleUser, Form, field
from gatehouse.web.deps import RuntimeDep, actor_of, resolve_principal, session_cookie_name
from gatehouse.web.net import client_ip
from gatehouse.web.redirects import resolve_return_to
from gatehouse.web.templating import redirect_with_flash, render

router = APIRouter(include_in_schema=False)
#: the refused sign-in's ID token, sealed (``BrowserContext.REFUSED_SIGN_IN``), for "Sign out of
#: the IdP" (``web/oidc_routes.py``); while it is there, "Sign in with …" asks the IdP for
#: another account instead of silently reusing the refused one
REFUSED_COOKIE = "gatehouse_refused"


def set_session_cookie(response: Response, rt: Any, raw: str) -> None:
    response.set_cookie(
        session_cookie_name(rt),
        raw,
        httponly=True,
        secure=rt.settings.https,
        samesite="lax",
        path="/",
        max_age=int(rt.session_limits.absolute.total_seconds()),
    )


def login_page(
    request: Request,
    rt: RuntimeDep,
    *,
    error: str | None = None,
    username: str = "",
    return_to: str = "/",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    with rt.db.session() as db:
        active = get_state(db).active
        idp_name = display_name(db)
    return render(
        request,
        "login.html",
        {
            "title": "Sign in",
            "oidc_active": active,
            "idp_name": idp_name,
            "error": error,
            "username": username,
            "return_to": return_to,
            "switch_account": REFUSED_COOKIE in request.cookies,
        },
        status_code=status_code,
        headers=headers,
    )


@router.get("/login")
def login(request: Request, rt: RuntimeDep, return_to: str = "/") -> Response:
    target = resolve_return_to(request, return_to)
    if resolve_principal(request) is not None:
        return RedirectResponse(target, status_code=303)
    return login_page(request, rt, return_to=target)


@router.post("/login/local")
def login_local(request: Request, form: Form, rt: RuntimeDep) -> Response:
    username = field(form, "username")
    password = form.get("password")
    target = resolve_return_to(request, field(form, "return_to"))
    if not isinstance(password, str) or not username:
        return login_page(
            request,
            rt,
            error="Enter your username and password.",
            username=username,
            return_to=target,
            status_code=400,
        )
    ip = client_ip(request)
    try:
        rt.ratelimit.hit(SIGN_IN, ip)
        user_id = local_auth.authenticate(rt.db.session, rt.lockout, username, password, ip)
    except DomainError as exc:
        PASSWORD_LOGIN.labels(outcome=exc.code).inc()
        headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else None
        return login_page(
            request,
            rt,
            error=exc.detail,
            username=username,
            return_to=target,
            status_code=exc.status,
            headers=headers,
        )
    PASSWORD_LOGIN.labels(outcome="ok").inc()
    old = request.cookies.get(session_cookie_name(rt))
    with rt.db.session() as db:
        user = users.get_user(db, user_id)
        users.mark_signed_in(user)
        raw, _row = sessions.create_session(
            db,
            user,
            method="password",
            limits=rt.session_limits,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            replaces=old,
        )
        must_change = user.must_change_password
    response = RedirectResponse("/account/password" if must_change else target, status_code=303)
    set_session_cookie(response, rt, raw)
    return response


@router.post("/logout")
def logout(request: Request, form: Form, rt: RuntimeDep) -> Response:
    raw = request.cookies.get(session_cookie_name(rt))
    principal = resolve_principal(request)
    target = "/login"
    if raw:
        with rt.db.session() as db:
            row = sessions.revoke(db, raw, "logout")
            if row is not None and principal is not None:
                audit.record(
                    db,
                    actor_of(request, principal),
                    "logout",
                    target_type="user",
                    target_id=principal.user.id,
                )
                # an OIDC session also ends at the IdP (RP-initiated logout), when it offers that
                target = logout_url(rt.signin, db, row) or target
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(session_cookie_name(rt), path="/")
    return response


def _account_page(
    request: Request,
    rt: Any,
    user_id: int,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> Response:
    """A page about the caller's own account: ``me``, its roles, and why it may (not) have a
    password under the current policy, plus ``context``."""
    with rt.db.session() as db:
        user = users.get_user(db, user_id)
        reason = password_policy(db).reason(local_admin=user.local_admin)
        own = {"me": user, "roles": users.effective_roles(user), "password_reason": reason}
        return render(request, template, {**own, **context}, status_code=status_code)


@router.get("/account")
def account(request: Request, principal: ConsoleUser, rt: RuntimeDep) -> Response:
    return _account_page(request, rt, principal.user.id, "account.html", {"title": "Your account"})


@router.get("/account/password")
def password_form(request: Request, principal: ConsoleUser, rt: RuntimeDep) -> Response:
    return _password_page(request, rt, principal.user.id)


def _password_page(
    request: Request,
    rt: Any,
    user_id: int,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return _account_page(
        request,
        rt,
        user_id,
        "account_password.html",
        {
            "title": "Change your password",
            "errors": errors or {},
            "min_length": passwords.MIN_LENGTH,
        },
        status_code,
    )


@router.post("/account/password")
def password_change(
    request: Request, form: Form, principal: ConsoleUser, rt: RuntimeDep
) -> Response:
    current = form.get("current_password")
    new = form.get("new_password")
    confirm = form.get("confirm_password")
    errors: dict[str, str] = {}
    if not isinstance(new, str) or new != confirm:
        errors["confirm_password"] = "The two new passwords are not the same."  # noqa: S105
    if errors:
        return _password_page(request, rt, principal.user.id, errors, 400)
    with rt.db.session() as db:
        user = users.get_user(db, principal.user.id)
        if not isinstance(current, str) or not passwords.verify_password(
            user.password_hash, current
        ):
            errors["current_password"] = "The current password is not correct."  # noqa: S105
        else:
            try:
                users.set_password(db, actor_of(request, principal), user, str(new))
                rt.initial_password_changed(db, user.id)
            except DomainError as exc:
                errors["new_password"] = exc.detail
    if errors:
        return _password_page(request, rt, principal.user.id, errors, 400)
    rt.users.invalidate(principal.user.id)
    return redirect_with_flash(request, "/", "Your password has been changed.")
