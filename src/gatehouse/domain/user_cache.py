"""``rt.users``: what a request needs to know about its caller, cached for a couple of seconds.

Every way of authenticating (session, bearer token, API token) ends in a :class:`UserSnapshot`
from this cache, so a disabled user is refused everywhere within ``ttl`` seconds, and changes
that concern a user call :meth:`UserCache.invalidate` to make it immediate on this replica.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from gatehouse.domain import users
from gatehouse.store.db import Database
from gatehouse.store.models import User


@dataclass(frozen=True)
class UserSnapshot:
    """What a request needs to know about its caller; cached for a couple of seconds."""

    id: int
    username: str
    email: str | None
    display_name: str
    local_admin: bool
    active: bool
    is_admin: bool
    roles: tuple[users.RoleGrant, ...]
    must_change_password: bool

    @classmethod
    def of(cls, user: User, environment_id: int | None = None) -> UserSnapshot:
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            display_name=user.display_name,
            local_admin=user.local_admin,
            active=user.status == "active",
            is_admin=users.is_admin(user, environment_id),
            roles=tuple(users.effective_roles(user)),
            must_change_password=user.must_change_password,
        )


class UserCache:
    """user id → snapshot, for at most ``ttl`` seconds (so a disabled user is refused quickly)."""

    def __init__(self, db: Database, ttl: float = 2.0) -> None:
        self._db = db
        self.ttl = ttl
        #: Environment role: this environment's id at the console (its scoped roles apply here).
        self.environment_id: int | None = None
        self._items: dict[int, tuple[float, UserSnapshot | None]] = {}
        self._lock = threading.Lock()

    def peek(self, user_id: int) -> tuple[UserSnapshot | None] | None:
        """The cached entry when still fresh — without any I/O — else None."""
        item = self._items.get(user_id)
        if item is not None and time.monotonic() - item[0] < self.ttl:
            return (item[1],)
        return None

    def get(self, user_id: int) -> UserSnapshot | None:
        now = time.monotonic()
        item = self._items.get(user_id)
        if item is not None and now - item[0] < self.ttl:
            return item[1]
        with self._db.session() as db:
            user = db.get(User, user_id)
            snap = UserSnapshot.of(user, self.environment_id) if user is not None else None
        with self._lock:
            if len(self._items) > 50_000:
                self._items.clear()
            self._items[user_id] = (now, snap)
        return snap

    def invalidate(self, user_id: int | None = None) -> None:
        with self._lock:
            if user_id is None:
                self._items.clear()
            else:
                self._items.pop(user_id, None)
