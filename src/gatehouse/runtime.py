"""The running instance: settings, database, secret box, token service and caches, built once.

Both the web app and the CLI build one ``Runtime``; tests build one per app.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gatehouse import __version__
from gatehouse.domain import audit, users
from gatehouse.domain.access_tokens import AccessTokenService
from gatehouse.domain.apps import OriginCache
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import SecretBox
from gatehouse.domain.errors import Conflict
from gatehouse.domain.idp import IdPService
from gatehouse.domain.local_auth import LockoutRules
from gatehouse.domain.ratelimit import RateLimiter
from gatehouse.domain.sessions import SessionLimits
from gatehouse.settings import Settings
from gatehouse.store import migrate
from gatehouse.store.db import Database
from gatehouse.store.models import KeyValue, User

log = logging.getLogger("gatehouse")

INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name


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


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = __version__
        self.db = Database(settings.resolved_database_url)
        # The key file may change under a running server (`gatehouse keys rotate`): follow it.
        self.box = SecretBox(
            *settings.keyring(),
            refresh=None if settings.secret_key else partial(settings.keyring, create=False),
        )
        self.tokens = AccessTokenService(
            self.db.session,
            self.box,
            issuer=settings.public_url,
            audience=settings.public_url,
            lifetime=timedelta(minutes=settings.access_token_minutes),
        )
        self.users = UserCache(self.db)
        self.lockout = LockoutRules(
            attempts=settings.lockout_attempts,
            window=timedelta(minutes=settings.lockout_minutes),
            ip_attempts=settings.ip_throttle_attempts,
        )
        self.session_limits = SessionLimits(
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_max_hours),
        )
        #: Registered app origins, for every redirect check (see ``web.redirects``).
        self.app_origins = OriginCache(self.db.engine.raw_connection)
        self.idp = IdPService(self.db, self.box, allow_insecure_http=settings.allow_insecure_http)
        #: Per-client-address limits shared by every replica (database, or Redis when set).
        self.ratelimit = RateLimiter(self.db, settings.redis_url)

    @property
    def session(self) -> Callable[[], AbstractContextManager[Session]]:
        return self.db.session

    def migrate(self) -> None:
        migrate.upgrade(self.db.engine)

    def start(self) -> None:
        """Migrate, load signing keys. Called once per process before serving."""
        self.migrate()
        self.tokens.load_keys()

    def close(self) -> None:
        self.idp.close()
        self.db.dispose()

    # -- first run --------------------------------------------------------------------------
    def has_local_admin(self) -> bool:
        with self.db.session() as db:
            return db.scalar(select(User.id).where(User.local_admin.is_(True)).limit(1)) is not None

    def ensure_initial_admin(self) -> str | None:
        """First run: create local admin ``admin`` with a random password, written to a 0600 file.

        Returns the password (to print once), or None when a local admin already exists.
        """
        if self.has_local_admin():
            return None
        password = secrets.token_urlsafe(18)
        try:
            with self.db.session() as db:
                user = users.create_user(
                    db,
                    Actor.system("first-run"),
                    username="admin",
                    display_name="Local administrator",
                    password=password,
                    local_admin=True,
                    must_change_password=True,
                )
                db.merge(KeyValue(key="initial_admin", value={"user_id": user.id}))
        except (Conflict, IntegrityError):
            # Another replica starting on the same empty database created it a moment ago.
            return None
        write_secret_file(self.settings.data_dir / INITIAL_PASSWORD_FILE, password + "\n")
        return password

    def bootstrap_admin(self, username: str, password: str) -> None:
        with self.db.session() as db:
            users.create_user(
                db,
                Actor.system("bootstrap"),
                username=username,
                password=password,
                local_admin=True,
                display_name="Local administrator",
            )

    def initial_password_changed(self, db: Session, user_id: int) -> None:
        """Delete the initial password file once that admin's password has changed."""
        marker = db.get(KeyValue, "initial_admin")
        if marker is None or marker.value.get("user_id") != user_id:
            return
        db.delete(marker)
        (self.settings.data_dir / INITIAL_PASSWORD_FILE).unlink(missing_ok=True)
        audit.record(
            db,
            Actor.system(),
            "admin.initial_password_removed",
            target_type="user",
            target_id=user_id,
        )


def write_secret_file(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@contextmanager
def open_runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings)
    try:
        yield rt
    finally:
        rt.close()
