"""CSRF protection for every state-changing form and cookie-authenticated API call.

Signed-in browsers: the token is an HMAC of the session's own CSRF secret (rotates with the
session). Anonymous forms (the sign-in form): an HMAC of a random pre-session cookie
(double-submit). Tokens are compared in constant time; the Origin header, when sent, must be ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.domain.crypto import random_token
from gatehouse.domain.errors import Forbidden

if TYPE_CHECKING:
    from gatehouse.web.principal import Principal

PRE_COOKIE = "gatehouse_pre"


def _box(request: Request) -> Any:
    return request.app.state.runtime.box


def token_for(request: Request, principal: Principal | None) -> str:
    box = _box(request)
    if principal is not None and principal.csrf_secret:
        return str(box.sign("s:" + principal.csrf_secret))
    pre = request.cookies.get(PRE_COOKIE) or getattr(request.state, "new_pre_cookie", None)
    if not pre:
        pre = random_token(18)
        request.state.new_pre_cookie = pre
    return str(box.sign("p:" + pre))


def set_pre_cookie(request: Request, response: Response) -> None:
    """Send the pre-session cookie minted while rendering an anonymous form."""
    value = getattr(request.state, "new_pre_cookie", None)
    if value:
        rt = request.app.state.runtime
        response.set_cookie(
            PRE_COOKIE,
            value,
            httponly=True,
            samesite="lax",
            secure=rt.settings.https,
            path="/",
        )


def _origin_ok(request: Request) -> bool:
    """Browsers send Origin on cross-site POSTs; when present it must be our public origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    want = urlsplit(request.app.state.runtime.settings.public_url)
    got = urlsplit(origin)
    return (got.scheme, got.netloc) == (want.scheme, want.netloc)


def verify(request: Request, principal: Principal | None, submitted: str | None) -> None:
    if not _origin_ok(request):
        raise Forbidden("The request came from another site.", code="csrf_failed")
    box = _box(request)
    messages: list[str] = []
    if principal is not None and principal.csrf_secret:
        messages.append("s:" + principal.csrf_secret)
    pre = request.cookies.get(PRE_COOKIE)
    if pre:
        messages.append("p:" + pre)
    # box.verify compares in constant time, under every key of the ring (a rotation mid-form)
    if not submitted or not any(box.verify(m, submitted) for m in messages):
        raise Forbidden(
            "The form expired or did not come from this site. Reload the page and try again.",
            code="csrf_failed",
        )


def valid_for_ended_session(request: Request, csrf_secret: str, submitted: str | None) -> bool:
    """Whether a form came from a page of a session that has since ended (its CSRF secret):
    such a form's fields may be kept for after sign-in (``web/console/forms.py``), a form from
    anywhere else never."""
    if not _origin_ok(request) or not submitted:
        return False
    return bool(_box(request).verify("s:" + csrf_secret, submitted))


def check_csrf_header(request: Request, principal: Principal) -> None:
    verify(request, principal, request.headers.get("x-csrf-token"))
