"""The running instance: settings, database, secret box, and every service, built once.

Both the web app and the CLI build one ``Runtime``; tests build one per app. It is the
composition root: each service gets what it needs here, explicitly, and the web layer reaches
them as ``rt.<name>`` (``web.deps``) — nothing is installed on the app later, so a missing
piece fails when the runtime is built, not at request time.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gatehouse import __version__
from gatehouse.domain import audit, users
from gatehouse.domain.access_tokens import AccessTokenService
from gatehouse.domain.api_tokens import ApiTokenVerifier
from gatehouse.domain.apps import OriginCache
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import SecretBox
from gatehouse.domain.errors import Conflict
from gatehouse.domain.idp import IdPService
from gatehouse.domain.local_auth import LockoutRules
from gatehouse.domain.ratelimit import RateLimiter
from gatehouse.domain.sessions import SessionLimits
from gatehouse.domain.signin import SessionKeeper, SignInServices
from gatehouse.domain.user_cache import UserCache
from gatehouse.settings import Settings
from gatehouse.store import migrate
from gatehouse.store.db import Database
from gatehouse.store.models import INITIAL_ADMIN_KEY, KeyValue, User

log = logging.getLogger("gatehouse")

INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name


class Runtime:
    """Settings, database, secret box and the services built on them (one per process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = __version__
        #: set by :meth:`start` (the app's start-up skips it when the CLI already did it)
        self.started = False
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
        self._trusted_proxies: tuple[str, frozenset[str]] = ("", frozenset())
        #: Per-client-address limits shared by every replica (database, or Redis when set).
        self.ratelimit = RateLimiter(self.db, settings.redis_url)
        #: ``Bearer gth_…``: API tokens for automation (a validated lookup is cached briefly).
        self.api_tokens = ApiTokenVerifier(self.db.session)
        #: What the OIDC sign-in (web flow, tools' token exchange) uses.
        self.signin = SignInServices(
            db=self.db,
            box=self.box,
            idp=self.idp,
            users=self.users,
            tokens=self.tokens,
            session_limits=self.session_limits,
            public_url=settings.public_url,
        )
        #: Checks every console session it is given; refreshes OIDC sessions' IdP tokens.
        self.session_keeper = SessionKeeper(self.signin)

    @property
    def trusted_proxies(self) -> frozenset[str]:
        """Proxies whose X-Forwarded-For is believed (``web.net.client_ip``), from settings."""
        raw = self.settings.trusted_proxies
        if raw != self._trusted_proxies[0]:
            parsed = frozenset(p.strip() for p in raw.split(",") if p.strip())
            self._trusted_proxies = (raw, parsed)
        return self._trusted_proxies[1]

    @property
    def session(self) -> Callable[[], AbstractContextManager[Session]]:
        return self.db.session

    def migrate(self) -> None:
        migrate.upgrade(self.db.engine)

    def start(self) -> None:
        """Migrate, load signing keys. Called once per process before serving."""
        self.migrate()
        self.tokens.load_keys()
        self.started = True

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
                db.merge(KeyValue(key=INITIAL_ADMIN_KEY, value={"user_id": user.id}))
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
        marker = db.get(KeyValue, INITIAL_ADMIN_KEY)
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
