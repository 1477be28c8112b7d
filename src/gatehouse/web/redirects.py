"""Where Gatehouse may send a browser after sign-in or logout.

Every such redirect goes through ``resolve_return_to``: a plain path on Gatehouse, a URL on
Gatehouse's own origin, or a URL of a registered app (``gatehouse.domain.apps``). The rules
themselves live in ``domain.apps.check_return_to``; this module adapts them to a request.
"""

from __future__ import annotations

from typing import Any

from gatehouse.domain import apps
from gatehouse.runtime import Runtime


def safe_local_path(value: str | None, default: str = "/") -> str:
    """``value`` if it is a plain path on Gatehouse itself, else ``default``."""
    if not value:
        return default
    try:
        return apps.check_return_to(value, ())
    except apps.InvalidReturnTo:
        return default


def check_return_to(runtime: Runtime, value: object) -> str:
    """``value`` if Gatehouse may redirect there, else ``InvalidReturnTo`` (400)."""
    own = apps.own_origin(runtime.settings.public_url)
    if isinstance(value, str) and value.startswith("/"):
        return apps.check_return_to(value, (), own)
    # Only absolute URLs need the registry (a cached, lock-free read).
    return apps.check_return_to(value, runtime.app_origins.get(), own)


def resolve_return_to(request: Any, value: str | None, default: str = "/") -> str:
    """Where to send the browser after sign-in or logout: ``value`` when allowed, else
    ``default``. Safe to call inside an open unit of work (the registry read never waits)."""
    if not value:
        return default
    try:
        return check_return_to(request.app.state.runtime, value)
    except apps.InvalidReturnTo:
        return default
