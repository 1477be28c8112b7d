"""Form handling shared by console pages: CSRF check, login-required redirects, and the notice
(and the kept form) when a session has ended.

When a console session ends (idle timeout, its absolute lifetime, the IdP ended it), the next
page sends the browser to the sign-in page with a notice that says why. A form posted after
its session ended is not lost: when it carries a valid CSRF token of that ended session (so it
came from this browser's own page), its fields — never passwords, secrets or tokens — are
sealed into a short-lived cookie (``BrowserContext.FORM_DRAFT``: AES-GCM, 15 minutes, bound
to the user and the page) and put back into the same form once that same user has signed in
again (``templating.render`` and ``static/gatehouse.js``). Nothing is stored on the server,
and a draft is never replayed: the person reviews the form and saves it again.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from starlette.datastructures import FormData

from gatehouse.domain.crypto import BrowserContext, seal, unseal
from gatehouse.domain.errors import DomainError
from gatehouse.domain.sessions import EndedSession
from gatehouse.web import csrf
from gatehouse.web.deps import resolve_principal
from gatehouse.web.principal import Principal

DRAFT_COOKIE = "gatehouse_draft"
DRAFT_SECONDS = 900
#: a sealed draft larger than this is not kept (cookies hold about 4 KB)
DRAFT_MAX_BYTES = 3500
#: fields never kept in a draft
_SECRET_WORDS = ("password", "secret", "token", "key", "pem")


class LoginRequired(DomainError):
    """Handled by a redirect to the sign-in page with the page asked for as return_to.

    ``notice`` (why the session ended) is shown there once; ``draft`` is the sealed form to
    put back after sign-in; ``clear_session``: the browser's session cookie is dead, drop it.
    """

    status = 303
    code = "login_required"

    def __init__(
        self,
        detail: str,
        *,
        notice: str | None = None,
        draft: str | None = None,
        clear_session: bool = False,
    ) -> None:
        super().__init__(detail)
        self.notice = notice
        self.draft = draft
        self.clear_session = clear_session


def ended_notice(request: Request, ended: EndedSession) -> str:
    """The sentence the sign-in page shows for a session that ended for ``ended.reason``."""
    limits = request.app.state.runtime.session_limits
    if ended.reason == "idle_timeout":
        minutes = int(limits.idle.total_seconds() // 60)
        return f"Your session ended after {minutes} minutes of inactivity — sign in again."
    if ended.reason == "expired":
        hours = limits.absolute.total_seconds() / 3600
        return f"Your session reached its limit of {hours:g} hours — sign in again."
    if ended.reason == "user_disabled":
        return "Your session ended because your account was disabled."
    if ended.reason == "password_not_allowed":
        return "Your session ended: single sign-on is now active — sign in with it."
    return "Your session was ended at the identity provider — sign in again."


def _ended(request: Request) -> EndedSession | None:
    ended = getattr(request.state, "ended_session", None)
    return ended if isinstance(ended, EndedSession) else None


def _form_page(request: Request) -> str:
    """The page the form was on (same-origin Referer), else the address it posted to."""
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        own = urlsplit(request.app.state.runtime.settings.public_url)
        if (parts.scheme, parts.netloc) == (own.scheme, own.netloc) and parts.path.startswith("/"):
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.url.path


def _draft(request: Request, form: FormData, ended: EndedSession, page: str) -> str | None:
    fields = [
        [name, value]
        for name, value in form.multi_items()
        if isinstance(value, str)
        and name not in ("csrf_token", "return_to")
        and not any(word in name.lower() for word in _SECRET_WORDS)
    ]
    if not fields:
        return None
    sealed = seal(
        request.app.state.runtime.box,
        {"user_id": ended.user_id, "path": urlsplit(page).path, "fields": fields},
        context=BrowserContext.FORM_DRAFT,
        seconds=DRAFT_SECONDS,
    )
    return sealed if len(sealed) <= DRAFT_MAX_BYTES else None


def _login_url(target: str) -> str:
    return f"/login?return_to={quote(target, safe='')}"


async def checked_form(request: Request) -> FormData:
    """The submitted form, after the CSRF check. A form whose session has ended meanwhile goes
    to the sign-in page with the notice, its fields kept (see the module docstring)."""
    form = await request.form()
    principal = resolve_principal(request)
    token = form.get("csrf_token")
    submitted = token if isinstance(token, str) else None
    ended = _ended(request) if principal is None else None
    if ended is not None and csrf.valid_for_ended_session(request, ended.csrf_secret, submitted):
        page = _form_page(request)
        draft = _draft(request, form, ended, page)
        kept = " What you typed is kept and will be filled in again." if draft else ""
        raise LoginRequired(
            _login_url(page),
            notice=ended_notice(request, ended) + kept,
            draft=draft,
            clear_session=True,
        )
    csrf.verify(request, principal, submitted)
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
        ended = _ended(request)
        if ended is not None:
            raise LoginRequired(
                _login_url(target), notice=ended_notice(request, ended), clear_session=True
            )
        raise LoginRequired(_login_url(target))
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


def draft_for(request: Request, principal: Any) -> list[list[str]] | None:
    """The kept fields for this page, when the signed-in user is the one who typed them."""
    raw = request.cookies.get(DRAFT_COOKIE)
    if not raw or principal is None or request.method != "GET":
        return None
    kept = unseal(request.app.state.runtime.box, raw, context=BrowserContext.FORM_DRAFT)
    if kept is None or kept.get("user_id") != principal.user.id:
        return None
    if kept.get("path") != request.url.path or not isinstance(kept.get("fields"), list):
        return None
    return [[str(n), str(v)] for n, v in kept["fields"]]
