"""FastAPI dependencies: the runtime, a database unit of work, and who the caller is.

``CurrentUser`` / ``CurrentAdmin`` resolve a bearer token (Gatehouse access token, or an API
token) or the session cookie. Cookie-authenticated unsafe API calls must carry the session's CSRF
token in ``X-CSRF-Token``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gatehouse.domain import sessions
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import sha256_hex
from gatehouse.domain.errors import Forbidden, Unauthenticated
from gatehouse.domain.ratelimit import Limit
from gatehouse.runtime import Runtime, UserSnapshot
from gatehouse.web.csrf import check_csrf_header
from gatehouse.web.net import client_ip
from gatehouse.web.principal import ALL_SCOPES, Principal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Ids are 32-bit on PostgreSQL; a larger number cannot name a row, and SQLite's driver cannot
#: even bind one past 2**63: refuse it as invalid input (422) instead of failing in the database.
MAX_ROW_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row id.")]


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db(request: Request) -> Iterator[Session]:
    with get_runtime(request).db.session() as db:
        yield db


#: Function-scoped: the unit of work commits before the response is sent, so a failed commit
#: becomes an error response instead of a success that was never stored.
DbDep = Annotated[Session, Depends(get_db, scope="function")]


def rate_limited(limit: Limit) -> Any:
    """A dependency that counts one hit of ``limit`` for the client address (429 past it).

    Runs before authentication and body-dependent work, so a flood is refused cheaply.
    """

    def hit(request: Request) -> None:
        get_runtime(request).ratelimit.hit(limit, client_ip(request))

    return Depends(hit)


def session_cookie_name(rt: Runtime) -> str:
    return "__Host-gatehouse_session" if rt.settings.https else "gatehouse_session"


def resolve_principal(request: Request) -> Principal | None:
    """The caller, or None. Cached on the request."""
    if "principal" in request.state._state:
        cached: Principal | None = request.state.principal
        return cached
    rt = get_runtime(request)
    principal: Principal | None = None
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "Use an Authorization header of the form 'Bearer <token>'.", code="invalid_token"
            )
        principal = _bearer_principal(request, rt, token.strip())
    else:
        raw = request.cookies.get(session_cookie_name(rt))
        if raw:
            with rt.db.session() as db:
                found = sessions.load_session(db, raw, rt.session_limits)
                row = found[0] if found is not None else None
            # Outside the unit of work: never two sessions at once (SQLite has one writer).
            session_hook = getattr(request.app.state, "session_hook", None)
            if row is not None and session_hook is not None and not session_hook(request, row):
                row = None  # e.g. the IdP refused to refresh this OIDC session's tokens
            principal_user = rt.users.get(row.user_id) if row is not None else None
            if row is not None and principal_user is not None and principal_user.active:
                principal = Principal(
                    user=principal_user,
                    method="session",
                    session_hash=row.id_hash,
                    csrf_secret=row.csrf_secret,
                    session_method=row.method,
                )
    request.state.principal = principal
    return principal


def _bearer_principal(request: Request, rt: Runtime, token: str) -> Principal:
    hook = getattr(request.app.state, "api_token_auth", None)
    if token.startswith("gth_") and hook is not None:
        result: Principal = hook(request, token)
        return result
    claims = rt.tokens.verify(token)
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise Unauthenticated("The access token is invalid.", code="invalid_token") from exc
    return _bearer_from_claims(claims, rt.users.get(user_id))


def _bearer_from_claims(claims: dict[str, Any], user: UserSnapshot | None) -> Principal:
    if user is None or not user.active:
        raise Unauthenticated(
            "This account is disabled or no longer exists.", code="account_disabled"
        )
    scopes = claims.get("scope")
    granted = frozenset(scopes.split()) & ALL_SCOPES if isinstance(scopes, str) else ALL_SCOPES
    return Principal(user=user, method="bearer", scopes=granted)


def _raw_header(request: Request, name: bytes) -> str | None:
    """One header straight from the ASGI scope (no Headers object on the hot path)."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _principal_async(request: Request) -> Principal | None:
    """``resolve_principal`` without a thread hop on the hot path.

    A Gatehouse bearer token whose validation and user snapshot are cached needs no I/O, so it
    is resolved on the event loop (~2 µs); everything that may touch the database (session
    cookies, API tokens, a user-cache miss) runs in the thread pool.
    """
    if "principal" in request.state._state:
        cached: Principal | None = request.state.principal
        return cached
    auth = _raw_header(request, b"authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token and not token.startswith("gth_"):
            rt = get_runtime(request)
            claims = rt.tokens.verify(token)
            try:
                user_id = int(claims["sub"])
            except (TypeError, ValueError) as exc:
                raise Unauthenticated("The access token is invalid.", code="invalid_token") from exc
            cached_user = rt.users.peek(user_id)
            if cached_user is not None:
                principal = _bearer_from_claims(claims, cached_user[0])
                request.state.principal = principal
                return principal
    return await run_in_threadpool(resolve_principal, request)


async def current_user(request: Request) -> Principal:
    principal = await _principal_async(request)
    if principal is None:
        raise Unauthenticated("Sign in first: send a bearer token or a session cookie.")
    if principal.method == "session" and request.method not in SAFE_METHODS:
        check_csrf_header(request, principal)
    if request.method not in SAFE_METHODS and "write" not in principal.scopes:
        raise Forbidden(
            "This token is read-only; it needs the 'write' scope.", code="insufficient_scope"
        )
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]


async def current_admin(principal: CurrentUser) -> Principal:
    if not principal.user.is_admin:
        raise Forbidden("Only administrators can do this.")
    if "admin" not in principal.scopes:
        raise Forbidden("This token lacks the 'admin' scope.", code="insufficient_scope")
    return principal


CurrentAdmin = Annotated[Principal, Depends(current_admin)]


def actor_of(request: Request, principal: Principal | None) -> Actor:
    ip = client_ip(request)
    if principal is None:
        return Actor.anonymous(ip)
    return Actor(
        principal.user.id,
        principal.user.username,
        ip,
        local_admin=principal.user.local_admin,
        is_admin=principal.user.is_admin,
    )


def session_hash_of(raw: str) -> str:
    return sha256_hex(raw)
