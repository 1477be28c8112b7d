"""On an environment server, what the console owns is read-only.

Users, roles, passwords, the IdP configuration and the environment registry come from the
console; a write here would be overwritten at the next sync, so it is refused up front with
409 ``managed_by_console`` (JSON for the API, the error page for the console). Pure ASGI, like
the security middleware, so requests that are not refused pay one prefix check.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gatehouse.web.errors import error_response

#: Path prefixes whose unsafe methods are refused on an environment server.
MANAGED_PREFIXES = (
    "/api/v1/users",
    "/api/v1/idp",
    "/api/v1/environments",
    "/api/v1/me/password",
    "/users",
    "/settings/idp",
    "/environments",
    "/account/password",
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_managed(method: str, path: str) -> bool:
    if method in SAFE_METHODS:
        return False
    return any(path == p or path.startswith(p + "/") for p in MANAGED_PREFIXES)


class ManagedByConsole:
    def __init__(self, app: ASGIApp, console_url: str | None = None) -> None:
        self.app = app
        self.where = f" at {console_url}" if console_url else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_managed(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        response = error_response(
            Request(scope),
            409,
            "managed_by_console",
            "This environment server is managed by the Gatehouse console: change users, roles, "
            f"passwords and the identity provider on the console{self.where}; the change "
            "arrives here with the next sync.",
        )
        await response(scope, receive, send)
