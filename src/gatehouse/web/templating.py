"""Jinja2 rendering with the context every page needs (caller, CSRF token, flashes, IdP name)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gatehouse import __version__
from gatehouse.web import csrf
from gatehouse.web.console.forms import DRAFT_COOKIE, draft_for

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
FLASH_COOKIE = "gatehouse_flash"


def _principal(request: Request) -> Any:
    return request.state._state.get("principal")


def redirect_with_flash(
    request: Request, url: str, message: str, kind: str = "success"
) -> RedirectResponse:
    """After a form post: 303 to ``url``, which shows ``message`` once (post/redirect/get)."""
    response = RedirectResponse(url, status_code=303)
    flash(response, request, message, kind)
    return response


def flash(response: Response, request: Request, message: str, kind: str = "success") -> None:
    """Queue a message for the next page (signed cookie, read once)."""
    box = request.app.state.runtime.box
    items = [*_read_flashes(request), {"kind": kind, "message": message}]
    payload = json.dumps(items[-5:])
    response.set_cookie(
        FLASH_COOKIE,
        f"{box.sign(payload)}.{payload}",
        httponly=True,
        samesite="lax",
        secure=request.app.state.runtime.settings.https,
        path="/",
    )


def _read_flashes(request: Request) -> list[dict[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or "." not in raw:
        return []
    sig, _, payload = raw.partition(".")
    if not request.app.state.runtime.box.verify(payload, sig):
        return []
    try:
        items = json.loads(payload)
    except ValueError:
        return []
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    principal = _principal(request)
    flashes = _read_flashes(request)
    draft = draft_for(request, principal)
    if draft:
        flashes.append(
            {
                "kind": "info",
                "message": "What you typed before your session ended is filled in again: "
                "check it and save.",
            }
        )
    ctx: dict[str, Any] = {
        "request": request,
        "principal": principal,
        "user": principal.user if principal else None,
        "csrf_token": csrf.token_for(request, principal),
        "flashes": flashes,
        "version": __version__,
        "role": request.app.state.runtime.settings.role,
        "nav": getattr(request.state, "nav", None),
        "draft": draft,
    }
    ctx.update(context or {})
    response = TEMPLATES.TemplateResponse(
        request, template, ctx, status_code=status_code, headers=headers
    )
    if flashes:
        response.delete_cookie(FLASH_COOKIE, path="/")
    if draft:
        response.delete_cookie(DRAFT_COOKIE, path="/")  # put back once
    csrf.set_pre_cookie(request, response)
    return response


def render_error(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    titles = {
        400: "That request was not valid",
        401: "Please sign in",
        403: "Not allowed",
        404: "Page not found",
        409: "That cannot be done right now",
        412: "Someone else changed this first",
        429: "Too many attempts",
        503: "Temporarily unavailable",
    }
    return render(
        request,
        "error.html",
        {
            "status": status,
            "code": code,
            "detail": detail,
            "title": titles.get(status, "Something went wrong"),
        },
        status_code=status,
        headers=headers,
    )
