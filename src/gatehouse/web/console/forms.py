"""Form handling shared by console pages: CSRF check and login-required redirects."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData

from gatehouse.domain.errors import DomainError
from gatehouse.web import csrf
from gatehouse.web.deps import resolve_principal
from gatehouse.web.principal import Principal


class LoginRequired(DomainError):
    """Handled by a redirect to the sign-in page with the page asked for as return_to."""

    status = 303
    code = "login_required"


async def checked_form(request: Request) -> FormData:
    """The submitted form, after the CSRF check."""
    form = await request.form()
    principal = resolve_principal(request)
    token = form.get("csrf_token")
    csrf.verify(request, principal, token if isinstance(token, str) else None)
    return form


Form = Annotated[FormData, Depends(checked_form)]


def console_user(request: Request) -> Principal:
    principal = resolve_principal(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if getattr(request.state, "oidc_reauth", False):
            # the OIDC session reached its end without a refresh token: re-authenticate,
            # silently (prompt=none) when the IdP session still exists
            raise LoginRequired(f"/auth/oidc/start?prompt=none&return_to={quote(target, safe='')}")
        raise LoginRequired(f"/login?return_to={quote(target, safe='')}")
    if principal.user.must_change_password and request.url.path != "/account/password":
        raise LoginRequired("/account/password")
    return principal


def console_admin(request: Request) -> Principal:
    principal = console_user(request)
    if not principal.user.is_admin:
        from gatehouse.domain.errors import Forbidden

        raise Forbidden("This page is for administrators.")
    return principal


ConsoleUser = Annotated[Principal, Depends(console_user)]
ConsoleAdmin = Annotated[Principal, Depends(console_admin)]


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
