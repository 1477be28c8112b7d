"""Route enumeration for the attacker-style tests: every route the app really serves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    in_schema: bool


def _walk(routes: list[Any], prefix: str, in_schema: bool) -> Iterator[RouteInfo]:
    for route in routes:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods or ()):
                yield RouteInfo(method, prefix + route.path, in_schema and route.include_in_schema)
        elif hasattr(route, "original_router"):  # FastAPI's included router
            ctx = route.include_context
            yield from _walk(
                route.original_router.routes,
                prefix + ctx.prefix,
                in_schema and ctx.include_in_schema,
            )


def app_routes(app: Any) -> list[RouteInfo]:
    found = {r: None for r in _walk(app.routes, "", True)}
    assert len(found) > 40, "route enumeration found too little; FastAPI internals changed?"
    return list(found)


def fill(path: str, value: str = "1") -> str:
    """A concrete URL for a templated path."""
    return re.sub(r"\{[^}]+\}", value, path)
