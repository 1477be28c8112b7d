"""Protect a Starlette/FastAPI app with Gatehouse: ``GatehouseAuthMiddleware``.

    app.add_middleware(
        GatehouseAuthMiddleware,
        gatehouse_url="http://gatehouse.internal:8000",   # how this server reaches Gatehouse
        app_url="https://tools.example.com",              # how browsers reach this app
    )

Unauthenticated browser navigations get a 302 to the unified login URL (they come back signed
in); other unauthenticated requests get 401. Signed-in callers arrive as ``request.user``
(``GatehouseUser``: ``username``, ``email``, ``roles`` …) and ``request.auth.scopes``
(``"authenticated"`` plus each role, so Starlette's ``@requires("Developer")`` works).

Trade-off chosen: the middleware asks Gatehouse's ``GET /auth/verify`` (the forward-auth
endpoint) with the caller's Gatehouse session cookie or bearer token, and caches a positive
answer for ``cache_seconds`` (default 5 s). Verifying Gatehouse access tokens locally against
``/api/v1/auth/jwks`` would save that round trip, but browsers hold an opaque session cookie,
not a JWT, and a local check cannot see logout, disabled users or API-token revocation. One
call per caller per few seconds keeps revocation nearly immediate and handles cookies, access
tokens and API tokens alike; the cost is that Gatehouse must be reachable (when it is not, the
middleware answers 503, never lets a request through).

The browser only sends the Gatehouse session cookie to this app when both share a host (see
``docs/forward-auth-nginx.md``: the proxy serves Gatehouse's ``/auth/``, ``/login`` and
``/static/`` on the app's host). Only that cookie is forwarded to Gatehouse, never the app's own.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from urllib.parse import unquote

import httpx
from starlette.authentication import AuthCredentials, BaseUser
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SESSION_COOKIES = ("__Host-gatehouse_session", "gatehouse_session")


@dataclass(frozen=True)
class GatehouseUser(BaseUser):
    """The signed-in Gatehouse user, as ``request.user``."""

    id: int
    username: str
    email: str
    name: str
    roles: tuple[str, ...] = field(default_factory=tuple)
    auth_method: str = ""

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.name or self.username

    @property
    def identity(self) -> str:
        return str(self.id)

    def has_role(self, role: str) -> bool:
        """``Role`` or ``Role@environment`` (a global grant counts for every environment)."""
        name, _, env = role.partition("@")
        return name in self.roles or (bool(env) and role in self.roles)

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> GatehouseUser:
        roles = headers.get("x-gatehouse-roles", "")
        return cls(
            id=int(headers["x-gatehouse-user-id"]),
            username=unquote(headers["x-gatehouse-user"]),
            email=unquote(headers.get("x-gatehouse-email", "")),
            name=unquote(headers.get("x-gatehouse-name", "")),
            roles=tuple(unquote(r) for r in roles.split(",") if r),
            auth_method=headers.get("x-gatehouse-auth-method", ""),
        )


class GatehouseUnavailable(Exception):
    """Gatehouse did not answer the verification call."""


class GatehouseAuthMiddleware:
    """Pure ASGI middleware: every HTTP request is verified against Gatehouse first."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        gatehouse_url: str,
        app_url: str | None = None,
        public_paths: Iterable[str] = (),
        cache_seconds: float = 5.0,
        cache_size: int = 10_000,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app = app
        self.verify_url = gatehouse_url.rstrip("/") + "/auth/verify"
        self.app_url = app_url.rstrip("/") if app_url else None
        self.public_paths = tuple(public_paths)
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, GatehouseUser]] = OrderedDict()
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        public = self.public_paths and scope["path"].startswith(self.public_paths)
        if scope["type"] != "http" or public:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            user, redirect = await self._verify(scope, headers)
        except GatehouseUnavailable:
            response: Response = JSONResponse(
                {"error": "unavailable", "detail": "Sign-in cannot be checked right now."},
                status_code=503,
                headers={"Retry-After": "5", "Cache-Control": "no-store"},
            )
            await response(scope, receive, send)
            return
        if user is None:
            if redirect:
                response = RedirectResponse(redirect, 302, headers={"Cache-Control": "no-store"})
            else:
                response = JSONResponse(
                    {"error": "unauthenticated", "detail": "Sign in through Gatehouse first."},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="gatehouse"'},
                )
            await response(scope, receive, send)
            return
        scope["user"] = user
        scope["auth"] = AuthCredentials(["authenticated", *user.roles])
        await self.app(scope, receive, send)

    def _credentials(self, headers: Headers) -> dict[str, str]:
        sent: dict[str, str] = {}
        if "authorization" in headers:
            sent["Authorization"] = headers["authorization"]
            return sent
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except CookieError:  # a malformed Cookie header is simply no credential
            return sent
        pairs = [f"{name}={cookie[name].value}" for name in SESSION_COOKIES if name in cookie]
        if pairs:
            sent["Cookie"] = "; ".join(pairs)
        return sent

    def _return_to(self, scope: Scope, headers: Headers) -> tuple[str, str, str]:
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1") or "/"
        query = scope.get("query_string", b"").decode("latin-1")
        uri = path + (f"?{query}" if query else "")
        if self.app_url:
            proto, _, host = self.app_url.partition("://")
            base_path = host.partition("/")[2]
            return proto, host.partition("/")[0], (f"/{base_path}" if base_path else "") + uri
        return scope.get("scheme", "http"), headers.get("host", ""), uri

    async def _verify(
        self, scope: Scope, headers: Headers
    ) -> tuple[GatehouseUser | None, str | None]:
        sent = self._credentials(headers)
        key = hashlib.sha256(repr(sorted(sent.items())).encode()).hexdigest() if sent else ""
        now = time.monotonic()
        hit = self._cache.get(key) if key else None
        if hit is not None and hit[0] > now:
            return hit[1], None
        browser = (
            scope["method"] in ("GET", "HEAD")
            and "Authorization" not in sent
            and "text/html" in headers.get("accept", "")
        )
        params = {"redirect": "1"} if browser else {}
        proto, host, uri = self._return_to(scope, headers)
        forwarded = {"X-Forwarded-Proto": proto, "X-Forwarded-Host": host, "X-Forwarded-Uri": uri}
        try:
            answer = await self._client.get(
                self.verify_url, params=params, headers={**sent, **forwarded}
            )
        except httpx.HTTPError as exc:
            raise GatehouseUnavailable(str(exc)) from exc
        if answer.status_code == 200:
            user = GatehouseUser.from_headers(answer.headers)
            if key:
                self._cache[key] = (now + self.cache_seconds, user)
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return user, None
        if answer.status_code == 302 and "location" in answer.headers:
            return None, answer.headers["location"]
        if answer.status_code in (400, 401, 403):
            return None, None
        raise GatehouseUnavailable(f"/auth/verify answered {answer.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()
