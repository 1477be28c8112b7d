"""Who is calling: resolved once per request from a bearer token or the session cookie."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gatehouse.domain.user_cache import UserSnapshot

ALL_SCOPES = frozenset({"read", "write", "admin"})


@dataclass(frozen=True)
class Principal:
    user: UserSnapshot
    method: Literal["session", "bearer", "api_token"]
    session_hash: str | None = None
    csrf_secret: str | None = None
    scopes: frozenset[str] = field(default_factory=lambda: ALL_SCOPES)
    session_method: str | None = None  # password | oidc (for session principals)

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin and "admin" in self.scopes
