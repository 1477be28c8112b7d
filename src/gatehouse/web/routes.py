"""Every router, included in one place."""

from __future__ import annotations

from fastapi import FastAPI

from gatehouse.domain import housekeeping
from gatehouse.lifecycle import run_alongside
from gatehouse.web import forward_auth
from gatehouse.web.api import apps as api_apps
from gatehouse.web.api import audit, auth, health, me, users
from gatehouse.web.api import tokens as api_tokens
from gatehouse.web.api import tools as tools_auth
from gatehouse.web.console import pages


def include_all(app: FastAPI) -> None:
    # Hot paths first (routes are matched in order): /api/v1/me and the health probes.
    # api_apps before users: /users/unified-login-url must win over /users/{user_id}.
    for module in (me, health, auth, api_apps, users, audit, forward_auth):
        app.include_router(module.router)
    _include_environments(app)
    app.include_router(tools_auth.router)
    api_tokens.install(app)
    run_alongside(
        app,
        lambda app: housekeeping.Housekeeper(
            app.state.runtime.db, lockout_minutes=app.state.runtime.settings.lockout_minutes
        ),
    )
    _include_oidc(app)
    app.include_router(pages.router)


def _include_oidc(app: FastAPI) -> None:
    """The OIDC web flow, its hooks (token freshness, RP-initiated logout), the IdP settings."""
    from gatehouse.web import oidc_routes
    from gatehouse.web.api import idp as idp_api
    from gatehouse.web.console import idp as idp_pages

    app.include_router(oidc_routes.router)
    app.include_router(idp_api.router)
    app.include_router(idp_pages.router)
    oidc_routes.install(app)


def _include_environments(app: FastAPI) -> None:
    """Console: the registry and the sync endpoints. Environment: the sync loop and read-only
    guard for what the console owns."""
    from gatehouse.sync import api as sync_api
    from gatehouse.sync import puller
    from gatehouse.sync.readonly import ManagedByConsole
    from gatehouse.web.api import environments as environments_api
    from gatehouse.web.console import environments as environments_pages

    settings = app.state.runtime.settings
    if settings.role == "environment":
        app.include_router(sync_api.environment_router)
        app.include_router(environments_pages.status_router)
        app.add_middleware(ManagedByConsole, console_url=settings.console_url)
        puller.install(app)
    else:
        app.include_router(sync_api.console_router)
        app.include_router(environments_api.router)
        app.include_router(environments_pages.router)
