"""Every router (and the role's middleware), included in one place."""

from __future__ import annotations

from fastapi import FastAPI

from gatehouse.runtime import Runtime
from gatehouse.web import api_docs, forward_auth, oidc_routes
from gatehouse.web.api import apps as api_apps
from gatehouse.web.api import audit, auth, environments, health, idp, me, sync, users
from gatehouse.web.api import tokens as api_tokens
from gatehouse.web.api import tools as tools_auth
from gatehouse.web.console import environments as environments_pages
from gatehouse.web.console import idp as idp_pages
from gatehouse.web.console import pages
from gatehouse.web.readonly import ManagedByConsole


def include_all(app: FastAPI, rt: Runtime) -> None:
    # Hot paths first (routes are matched in order): /api/v1/me and the health probes.
    # api_apps before users: /users/unified-login-url must win over /users/{user_id}.
    for router in (me.router, health.router, auth.router, api_apps.router, users.router):
        app.include_router(router)
    app.include_router(audit.router)
    app.include_router(forward_auth.router)
    _include_environments(app, rt)
    app.include_router(tools_auth.router)
    app.include_router(api_tokens.router)
    # The OIDC web flow and the IdP settings.
    app.include_router(oidc_routes.router)
    app.include_router(idp.router)
    app.include_router(idp_pages.router)
    app.include_router(pages.router)
    app.include_router(api_docs.router)


def _include_environments(app: FastAPI, rt: Runtime) -> None:
    """Console: the registry and the sync endpoints. Environment: its sync status, and the
    read-only guard for what the console owns (the sync loop is a background service)."""
    if rt.settings.role == "environment":
        app.include_router(sync.environment_router)
        app.include_router(environments_pages.status_router)
        app.add_middleware(ManagedByConsole, console_url=rt.settings.console_url)
    else:
        app.include_router(sync.console_router)
        app.include_router(environments.router)
        app.include_router(environments_pages.router)
