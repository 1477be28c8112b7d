"""``GET /auth/verify``: forward authentication for reverse proxies (nginx ``auth_request``,
Traefik ``forwardAuth``, Caddy ``forward_auth``) and for ``gatehouse.integrations.asgi``.

* 200 with identity headers for a live session cookie or a valid bearer token (Gatehouse access
  token or API token), 401 otherwise, 403 when ``?role=`` is required and missing.
* ``?redirect=1`` (browser navigations behind Traefik/Caddy, or nginx's ``error_page 401``): an
  unauthenticated browser gets a 302 to the unified login URL whose ``return_to`` is rebuilt
  from ``X-Forwarded-Proto/Host/Uri`` and judged like any ``return_to`` — an unregistered host
  gets 400, never a redirect.

It is a hot path: a bearer token costs the token cache and the user cache; a cookie costs one
session read. No body is read and nothing secret is ever echoed.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from prometheus_client import Counter
from starlette.responses import RedirectResponse, Response

from gatehouse.domain import apps
from gatehouse.domain.errors import DomainError, Forbidden, Unauthenticated
from gatehouse.domain.idp_state import get_state
from gatehouse.domain.user_cache import UserSnapshot
from gatehouse.metrics import REGISTRY
from gatehouse.web.deps import get_runtime, resolve_principal
from gatehouse.web.principal import Principal
from gatehouse.web.redirects import check_return_to

router = APIRouter(tags=["forward auth"])

FORWARD_AUTH = Counter(
    "gatehouse_forward_auth_total",
    "Forward-auth checks by outcome (ok, unauthenticated, missing_role, redirect, "
    "invalid_return_to).",
    ["outcome"],
    registry=REGISTRY,
)

#: Header values are percent-encoded UTF-8 outside this set, so no value can smuggle CR/LF,
#: commas or non-Latin-1 text into a proxy's headers.
_HEADER_SAFE = "@.+-_~!$&'()*:;=/ "
_TRUE = frozenset({"1", "true", "yes", "on"})
#: nginx's auth_request subrequest keeps the original method; the check is the same for all.
_OTHER_METHODS = ["HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def header_value(value: str | None) -> str:
    return quote(value or "", safe=_HEADER_SAFE)


def role_names(user: UserSnapshot) -> list[str]:
    """``Developer`` for a global grant, ``Developer@prod`` for one environment."""
    return [g.role if g.environment is None else f"{g.role}@{g.environment}" for g in user.roles]


def has_role(user: UserSnapshot, required: str) -> bool:
    """A global grant satisfies every environment; ``Role@env`` also accepts that grant."""
    role, _, env = required.partition("@")
    return any(
        g.role == role and (g.environment is None or (env and g.environment == env))
        for g in user.roles
    )


def identity_headers(principal: Principal) -> dict[str, str]:
    user = principal.user
    return {
        "X-Gatehouse-User": header_value(user.username),
        "X-Gatehouse-User-Id": str(user.id),
        "X-Gatehouse-Email": header_value(user.email),
        "X-Gatehouse-Name": header_value(user.display_name),
        "X-Gatehouse-Roles": ",".join(header_value(r) for r in role_names(user)),
        "X-Gatehouse-Auth-Method": principal.method,
        "Cache-Control": "no-store",
    }


def forwarded_return_to(request: Request) -> str:
    """The URL the proxy was asked for, from ``X-Forwarded-Proto/Host/Uri`` (no guessing)."""
    proto = request.headers.get("x-forwarded-proto", "")
    host = request.headers.get("x-forwarded-host", "")
    uri = request.headers.get("x-forwarded-uri") or "/"
    if proto not in ("http", "https") or not host or "," in host or not uri.startswith("/"):
        raise apps.InvalidReturnTo(
            "Forward auth needs X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri "
            "(one value each) to send the browser to sign in."
        )
    return f"{proto}://{host}{uri}"


def _caller(request: Request) -> Principal | None:
    try:
        return resolve_principal(request)
    except Unauthenticated:
        return None


@router.get(
    "/auth/verify",
    summary="Forward auth: 200 + X-Gatehouse-* identity headers, or 401 (or 302 with redirect=1)",
    response_class=Response,  # 200 has no body: the answer is the status and headers
    responses={
        200: {"description": "Signed in; identity in X-Gatehouse-* headers"},
        302: {"description": "redirect=1: to the unified login URL"},
        400: {"description": "redirect=1 but the forwarded URL is not a registered app"},
        401: {"description": "Not signed in"},
        403: {"description": "Signed in without the required role"},
    },
)
def verify(request: Request) -> Response:
    principal = _caller(request)
    query = request.query_params
    if principal is None:
        wants_redirect = query.get("redirect", "").lower() in _TRUE
        if not wants_redirect or "authorization" in request.headers:
            FORWARD_AUTH.labels(outcome="unauthenticated").inc()
            raise Unauthenticated("Sign in first: no valid session cookie or bearer token.")
        rt = get_runtime(request)
        try:
            target = check_return_to(rt, forwarded_return_to(request))
        except DomainError:
            FORWARD_AUTH.labels(outcome="invalid_return_to").inc()
            raise
        with rt.db.session() as db:
            active = get_state(db).active
        FORWARD_AUTH.labels(outcome="redirect").inc()
        url = apps.unified_login_url(rt.settings.public_url, target, oidc_active=active)
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    required = query.get("role")
    if required and not has_role(principal.user, required):
        FORWARD_AUTH.labels(outcome="missing_role").inc()
        raise Forbidden(f"This needs the role {required!r}.", code="missing_role")
    FORWARD_AUTH.labels(outcome="ok").inc()
    return Response(status_code=200, headers=identity_headers(principal))


router.add_api_route("/auth/verify", verify, methods=_OTHER_METHODS, include_in_schema=False)
