"""FastAPI dependencies: the runtime, a database unit of work, and who the caller is.

Every request is authenticated here, by one of four credentials, each resolved by a service
the runtime owns (``rt.<name>``, built in :class:`gatehouse.runtime.Runtime`):

============================================  ==============================================
credential                                    resolved by
============================================  ==============================================
``Authorization: Bearer <JWT>``               ``rt.tokens`` (Gatehouse access token) and
                                              ``rt.users`` — on the event loop when both are
                                              cached (:func:`_principal_async`)
``Authorization: Bearer gth_…``               ``rt.api_tokens`` (API token) and ``rt.users``
session cookie                                ``sessions.load_session``, then
                                              ``rt.session_keeper`` (every session, so an OIDC
                                              session is always checked against the IdP)
``Authorization: Bearer <environment         ``environments.authenticate`` — only on the sync
credential>``                                 routes (``CallerEnvironment``)
============================================  ==============================================

``CurrentUser`` / ``CurrentAdmin`` are the first three, as a :class:`Principal`;
cookie-authenticated unsafe API calls must carry the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gatehouse.domain import environments, sessions
from gatehouse.domain.api_tokens import TOKEN_PREFIX
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import sha256_hex
from gatehouse.domain.errors import Forbidden, Unauthenticated
from gatehouse.domain.ratelimit import Limit
from gatehouse.domain.user_cache import UserSnapshot
from gatehouse.metrics import API_AUTH
from gatehouse.runtime import Runtime
from gatehouse.store.models import Environment
from gatehouse.store.models import Session as SessionRow
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
    """The caller, or None (no credential sent). Cached on the request.

    :raises Unauthenticated: a bearer token was sent and is not valid
    """
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
        principal = _bearer_principal(rt, token.strip())
    else:
        raw = request.cookies.get(session_cookie_name(rt))
        if raw:
            principal = _session_principal(request, rt, raw)
    request.state.principal = principal
    return principal


def _session_principal(request: Request, rt: Runtime, raw: str) -> Principal | None:
    """A live session cookie's caller, after the session keeper's check."""
    with rt.db.session() as db:
        found = sessions.load_session(db, raw, rt.session_limits)
        row = found[0] if found is not None else None
        if row is None:
            # why it ended (idle, expired …): console pages tell the browser (web/console/forms)
            request.state.ended_session = sessions.ended_session(db, raw)
    if row is None:
        return None
    # Outside the unit of work: never two sessions at once (SQLite has one writer).
    if not _session_still_valid(request, rt, row):
        with rt.db.session() as db:
            request.state.ended_session = sessions.ended_session(db, raw)
        return None  # e.g. the IdP refused to refresh this OIDC session's tokens
    user = rt.users.get(row.user_id)
    if user is None or not user.active:
        return None
    return Principal(
        user=user,
        method="session",
        session_hash=row.id_hash,
        csrf_secret=row.csrf_secret,
        session_method=row.method,
    )


def _session_still_valid(request: Request, rt: Runtime, row: SessionRow) -> bool:
    """``rt.session_keeper`` on every session: an OIDC session whose IdP tokens are due is
    refreshed here, and ends when the IdP refuses (cheap and I/O-free while they are fresh)."""
    if row.method == "oidc" and row.idp_issuer:
        # this page's sign-out form ends at the IdP: let its CSP form-action allow that
        issuer = urlsplit(row.idp_issuer)
        request.state.form_action_origin = f"{issuer.scheme}://{issuer.netloc}"
    outcome = rt.session_keeper.check(row)
    if outcome == "reauth":
        request.state.oidc_reauth = True  # console pages retry with prompt=none
    return outcome not in ("ended", "reauth")


def _bearer_principal(rt: Runtime, token: str) -> Principal:
    if token.startswith(TOKEN_PREFIX):
        return _api_token_principal(rt, token)
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


def _api_token_principal(rt: Runtime, secret: str) -> Principal:
    """A ``gth_`` API token's caller (``rt.api_tokens``).

    The owner's current state applies at each use (through the user cache): a disabled user's
    tokens stop at once, and ``admin`` only counts while the owner is an administrator.
    """
    try:
        grant = rt.api_tokens.verify(secret)
    except Unauthenticated as exc:
        API_AUTH.labels(method="api_token", outcome=exc.code).inc()
        raise
    user = rt.users.get(grant.user_id)
    if user is None or not user.active:
        API_AUTH.labels(method="api_token", outcome="account_disabled").inc()
        raise Unauthenticated(
            "This account is disabled or no longer exists.", code="account_disabled"
        )
    scopes = set(grant.scopes & ALL_SCOPES)
    if not user.is_admin:
        scopes.discard("admin")
    API_AUTH.labels(method="api_token", outcome="ok").inc()
    return Principal(user=user, method="api_token", scopes=frozenset(scopes))


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
        if scheme.lower() == "bearer" and token and not token.startswith(TOKEN_PREFIX):
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


def current_environment(request: Request, db: DbDep) -> Environment:
    """The environment whose credential is the bearer token (401 otherwise, e.g. deregistered).

    Only the sync routes (``web/api/sync.py``) accept it; it is never a :class:`Principal`.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Send the environment credential as 'Authorization: Bearer <credential>'.",
            code="invalid_environment_credential",
        )
    return environments.authenticate(db, token.strip())


CallerEnvironment = Annotated[Environment, Depends(current_environment)]


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
