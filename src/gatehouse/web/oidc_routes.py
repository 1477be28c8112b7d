"""The web flow's routes: start, callback, back-channel logout.

Thin: each route reads the request, calls :mod:`gatehouse.domain.signin` with ``rt.signin``, and
shapes the response. Every redirect target after sign-in goes through
``redirects.resolve_return_to``. (Session refresh runs in ``web.deps``; RP-initiated logout in
``web.console.auth.logout``.)
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from gatehouse.domain.errors import Forbidden
from gatehouse.domain.ratelimit import CALLBACK, OIDC_START
from gatehouse.domain.signin import (
    CALLBACK_PATH,
    FLOW_LIFETIME,
    Callback,
    Restart,
    SignedIn,
    SignInError,
    backchannel_logout,
    finish_flow,
    refused_logout_url,
    start_flow,
)
from gatehouse.domain.signin.callback import REFUSED_LOGOUT_SECONDS
from gatehouse.metrics import OIDC_CALLBACK
from gatehouse.web.console.auth import REFUSED_COOKIE, set_session_cookie
from gatehouse.web.console.forms import Form
from gatehouse.web.deps import RuntimeDep, get_runtime, resolve_principal, session_cookie_name
from gatehouse.web.net import client_ip
from gatehouse.web.redirects import resolve_return_to
from gatehouse.web.templating import redirect_with_flash, render

router = APIRouter(include_in_schema=False)
BROWSER_COOKIE = "gatehouse_oidc_browser"
PROMPTS = ("none", "login", "select_account")


def start_url(return_to: str, *, silent: bool = False, prompt: str | None = None) -> str:
    """The local URL that begins a sign-in (``silent``: try ``prompt=none`` first; ``prompt=
    "select_account"``: ask the IdP for another account)."""
    query = {"return_to": return_to}
    if silent:
        query["prompt"] = "none"
    elif prompt:
        query["prompt"] = prompt
    return "/auth/oidc/start?" + urlencode(query)


def _failure_page(request: Request, exc: SignInError, return_to: str = "/") -> Response:
    """The readable page of a failed sign-in. A refused identity is named, with "Use another
    account" (``prompt=select_account``) and "Sign out of the IdP" (RP-initiated logout with the
    refused sign-in's ID token, sealed in a short-lived cookie)."""
    refused = exc.refused
    if refused is not None and refused.logout_origin:
        # the sign-out form ends with a 303 to the IdP: this page's form-action must allow it
        request.state.form_action_origin = refused.logout_origin
    response = render(
        request,
        "oidc_error.html",
        {
            "title": exc.title,
            "detail": exc.detail,
            "code": exc.code,
            "status": exc.status,
            "refused": refused,
            "cancelled": exc.cancelled,
            "retry_url": start_url(return_to),
            "other_account_url": start_url(return_to, prompt="select_account"),
            "show_retry": refused is None
            and exc.code not in ("unknown_user", "account_disabled", "oidc_not_active"),
        },
        status_code=exc.status,
        headers={"Retry-After": "30"} if exc.status == 503 else None,
    )
    if refused is not None and refused.sealed_logout:
        rt = get_runtime(request)
        response.set_cookie(
            REFUSED_COOKIE,
            refused.sealed_logout,
            max_age=REFUSED_LOGOUT_SECONDS,
            path="/",
            httponly=True,
            secure=rt.settings.https,
            samesite="lax",
        )
    return response


@router.get("/auth/oidc/start")
def oidc_start(
    request: Request,
    rt: RuntimeDep,
    return_to: str = "/",
    purpose: str = "login",
    prompt: str | None = None,
) -> Response:
    """Begin the authorization-code flow: 302 to the IdP's authorization endpoint."""
    rt.ratelimit.hit(OIDC_START, client_ip(request))  # each start stores a flow row
    target = resolve_return_to(request, return_to)
    active, ctx = rt.idp.active_context()
    if purpose == "test":
        principal = resolve_principal(request)
        if principal is None or not principal.user.is_admin:
            raise Forbidden("Only administrators can run a test sign-in.")
        target = "/settings/idp"
    elif not active:
        OIDC_CALLBACK.labels(outcome="start_not_active").inc()
        return _failure_page(
            request,
            SignInError(
                "Single sign-on is not active; sign in with your password.",
                code="oidc_not_active",
                status=409,
                title="Single sign-on is off",
            ),
        )
    try:
        flow = start_flow(
            rt.signin,
            return_to=target,
            purpose="test" if purpose == "test" else "login",
            browser_secret=request.cookies.get(BROWSER_COOKIE),
            prompt=prompt if prompt in PROMPTS else None,
            ctx=ctx,
        )
    except SignInError as exc:
        OIDC_CALLBACK.labels(outcome="start_" + exc.code).inc()
        return _failure_page(request, exc, target)
    response = RedirectResponse(flow.url, status_code=302)
    response.set_cookie(
        BROWSER_COOKIE,
        flow.browser_secret,
        max_age=int(FLOW_LIFETIME.total_seconds()),
        path="/auth/oidc",
        httponly=True,
        secure=rt.settings.https,
        samesite="lax",  # the IdP's redirect back is a top-level GET: lax cookies are sent
    )
    return response


@router.get(CALLBACK_PATH)
def oidc_callback(request: Request, rt: RuntimeDep) -> Response:
    """The redirect URI: finish the flow and start a session (or show why not)."""
    rt.ratelimit.hit(CALLBACK, client_ip(request))
    items = request.query_params.multi_items()
    params = dict(items)
    try:
        if len(params) != len(items):
            # RFC 6749 3.1: "Request and response parameters MUST NOT be included more than once"
            raise SignInError(
                "The answer from the identity provider repeats a parameter.",
                code="duplicate_parameter",
            )
        callback = Callback(
            params=params,
            browser_secret=request.cookies.get(BROWSER_COOKIE),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            replaces=request.cookies.get(session_cookie_name(rt)),
        )
        result = finish_flow(rt.signin, callback)
    except SignInError as exc:
        return _failure_page(request, exc, resolve_return_to(request, exc.return_to))
    if isinstance(result, Restart):
        return RedirectResponse(start_url(result.return_to), status_code=303)
    if isinstance(result, SignedIn):
        response = RedirectResponse(resolve_return_to(request, result.return_to), status_code=303)
        set_session_cookie(response, rt, result.raw_session)
        if REFUSED_COOKIE in request.cookies:
            response.delete_cookie(REFUSED_COOKIE, path="/")
        return response
    principal = resolve_principal(request)
    if principal is None or not principal.user.is_admin:
        raise Forbidden("Only administrators can see a test sign-in's result.")
    return render(
        request,
        "idp_test_signin.html",
        {
            "title": "Test sign-in",
            "result": result,
            "id_token_claims": sorted(result.id_token_claims.items()),
            "userinfo_claims": sorted((result.userinfo_claims or {}).items()),
        },
    )


@router.post("/auth/oidc/refused-logout")
def oidc_refused_logout(request: Request, form: Form, rt: RuntimeDep) -> Response:
    """The refused sign-in page's "Sign out of the IdP": RP-initiated logout with that sign-in's
    ID token as ``id_token_hint``, so the next sign-in can use another account. Without a usable
    seal (expired, another browser), back to the sign-in page, which says what to do."""
    url = refused_logout_url(rt.signin, request.cookies.get(REFUSED_COOKIE))
    if url is None:
        return redirect_with_flash(
            request,
            "/login",
            "Gatehouse could not sign you out at the identity provider (the refused sign-in is "
            "too old). Sign out there yourself, or use “Sign in with …” and choose another "
            "account.",
            "error",
        )
    response = RedirectResponse(url, status_code=303)
    response.delete_cookie(REFUSED_COOKIE, path="/")
    return response


@router.post("/auth/oidc/backchannel-logout")
async def oidc_backchannel_logout(request: Request) -> Response:
    """OpenID Connect Back-Channel Logout 1.0, 2.5/2.8: 200 when the logout token is valid
    (also when its sessions are already gone), 400 otherwise; never cached."""
    rt = get_runtime(request)
    form = await request.form()
    token = form.get("logout_token")
    headers = {"Cache-Control": "no-store"}
    try:
        ended = await run_in_threadpool(
            backchannel_logout, rt.signin, token if isinstance(token, str) else None
        )
    except SignInError as exc:
        return JSONResponse(
            {"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=headers
        )
    return JSONResponse({"sessions_ended": ended}, status_code=200, headers=headers)
