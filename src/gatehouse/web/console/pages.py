"""All console routers, combined."""

from __future__ import annotations

from fastapi import APIRouter

from gatehouse.web.console import apps, audit, auth, home, tokens, users

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(home.router)
router.include_router(users.router)
router.include_router(audit.router)
router.include_router(apps.router)
router.include_router(tokens.router)
