"""Every router, included in one place."""

from __future__ import annotations

from fastapi import FastAPI

from gatehouse.web.api import audit, auth, health, me, users
from gatehouse.web.console import pages


def include_all(app: FastAPI) -> None:
    for module in (health, auth, me, users, audit):
        app.include_router(module.router)
    app.include_router(pages.router)
