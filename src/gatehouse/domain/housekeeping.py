"""Housekeeping: delete the rows that only matter for a while, so that tables stay the size of
what is live rather than of everything that ever happened.

Each replica runs it every :data:`INTERVAL_SECONDS` (with jitter); the deletes are idempotent,
so replicas need no coordination. The audit log is never touched: it keeps the history of
sign-ins, sessions and refusals for as long as the operator keeps it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_
from sqlalchemy.exc import SQLAlchemyError

from gatehouse.metrics import HOUSEKEEPING_DELETED
from gatehouse.store.db import Database
from gatehouse.store.models import (
    LoginAttempt,
    OIDCFlow,
    RateLimitBucket,
    SeenJTI,
    Session,
    utcnow,
)

log = logging.getLogger("gatehouse.housekeeping")

INTERVAL_SECONDS = 600.0
#: an ended session is kept this long, so a browser that comes back is told it ended
ENDED_SESSION_KEPT = timedelta(days=1)
#: password attempts are kept this long (lockout and IP throttling look back minutes)
LOGIN_ATTEMPTS_KEPT = timedelta(days=1)
#: a rate-limit window is over after at most a minute; idle buckets go after an hour
IDLE_BUCKET_KEPT = timedelta(hours=1)


def run_once(db: Database, *, lockout_minutes: int, now: datetime | None = None) -> dict[str, int]:
    """Delete what has expired; returns the number of rows deleted per table."""
    now = now or utcnow()
    attempts_cutoff = now - max(LOGIN_ATTEMPTS_KEPT, timedelta(minutes=2 * lockout_minutes))
    session_cutoff = now - ENDED_SESSION_KEPT
    statements: dict[str, Any] = {
        "sessions": delete(Session).where(
            or_(Session.expires_at < session_cutoff, Session.revoked_at < session_cutoff)
        ),
        "oidc_flows": delete(OIDCFlow).where(OIDCFlow.expires_at < now),
        "seen_jtis": delete(SeenJTI).where(SeenJTI.expires_at < now),
        "login_attempts": delete(LoginAttempt).where(LoginAttempt.at < attempts_cutoff),
        "rate_limit_buckets": delete(RateLimitBucket).where(
            RateLimitBucket.window_start < now - IDLE_BUCKET_KEPT
        ),
    }
    deleted: dict[str, int] = {}
    for table, statement in statements.items():
        with db.session() as session:  # one short transaction per table: no long locks
            count = int(getattr(session.execute(statement), "rowcount", 0) or 0)
        deleted[table] = count
        if count:
            HOUSEKEEPING_DELETED.labels(table=table).inc(count)
    return deleted


class Housekeeper:
    """Runs :func:`run_once` in a daemon thread until stopped; a failure waits for the next turn.

    Started with the app (:func:`gatehouse.lifecycle.background_services`)."""

    def __init__(
        self,
        db: Database,
        *,
        lockout_minutes: int,
        interval: float = INTERVAL_SECONDS,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._db = db
        self._lockout_minutes = lockout_minutes
        self._interval = interval
        self._jitter = jitter
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="gatehouse-housekeeping", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        # spread replicas (and restarts) over the interval instead of all deleting at once
        while not self._stop.wait(self._interval * (0.5 + self._jitter())):
            try:
                deleted = run_once(self._db, lockout_minutes=self._lockout_minutes)
            except SQLAlchemyError as exc:
                log.warning("housekeeping skipped: database error %s", type(exc).__name__)
                continue
            if any(deleted.values()):
                log.info("housekeeping deleted %s", {k: v for k, v in deleted.items() if v})
