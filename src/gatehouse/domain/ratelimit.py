"""Fixed-window rate limits shared by every replica.

Counters live in the database (one atomic upsert per hit) or, when ``GATEHOUSE_REDIS_URL`` is
set, in Redis (INCR + EXPIRE). Either way two replicas count together, so an attacker cannot
multiply the limit by spreading requests over replicas. A refused hit raises ``TooManyAttempts``
with the seconds until the window ends (sent as ``Retry-After``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gatehouse.domain.errors import TooManyAttempts
from gatehouse.store.db import Database
from gatehouse.store.models import RateLimitBucket

log = logging.getLogger("gatehouse.ratelimit")


@dataclass(frozen=True)
class Limit:
    """``limit`` hits per ``window`` seconds."""

    name: str
    limit: int
    window: int


#: The limits Gatehouse applies (per client address unless stated otherwise).
SIGN_IN = Limit("sign_in", 30, 60)
OIDC_START = Limit("oidc_start", 60, 60)
CALLBACK = Limit("oidc_callback", 60, 60)
TOKEN_EXCHANGE = Limit("token_exchange", 60, 60)
API_TOKENS = Limit("api_tokens", 30, 60)
UNIFIED_LOGIN_URL = Limit("unified_login_url", 300, 60)


class RateLimiter:
    def __init__(
        self, db: Database, redis_url: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._clock = clock
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
            )

    def hit(self, limit: Limit, subject: str) -> None:
        """Count one hit for ``subject``; raise TooManyAttempts when over the limit."""
        now = self._clock()
        window_start = int(now // limit.window * limit.window)
        key = f"{limit.name}:{subject}"[:200]
        count = self._incr_redis(key, window_start, limit) if self._redis is not None else None
        if count is None:
            count = self._incr_db(key, window_start)
        if count > limit.limit:
            retry_after = int(window_start + limit.window - now) + 1
            raise TooManyAttempts(
                f"Too many requests; try again in {retry_after} seconds.",
                retry_after=retry_after,
                code="rate_limited",
            )

    def _incr_redis(self, key: str, window_start: int, limit: Limit) -> int | None:
        rkey = f"gatehouse:rl:{key}:{window_start}"
        try:
            pipe = self._redis.pipeline()
            pipe.incr(rkey)
            pipe.expire(rkey, limit.window + 1)
            count, _ = pipe.execute()
            return int(count)
        except Exception as exc:  # Redis down: fall back to the database, still shared
            log.warning(
                "redis unavailable for rate limits (%s); using the database", type(exc).__name__
            )
            return None

    def _incr_db(self, key: str, window_start: int) -> int:
        start = datetime.fromtimestamp(window_start, UTC)
        # a count lost in a crash only lets a few more hits through: a relaxed write
        with self._db.relaxed() as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            stmt = insert(RateLimitBucket).values(key=key, window_start=start, count=1)
            stmt = stmt.on_conflict_do_update(
                index_elements=[RateLimitBucket.key],
                set_={
                    # A new window resets the count; the same window increments it.
                    "count": _case_count(stmt, start),
                    "window_start": start,
                },
            )
            # One round trip: the upsert returns the new count (PostgreSQL, SQLite >= 3.35).
            count = conn.scalar(stmt.returning(RateLimitBucket.count))
            return int(count or 0)


def _case_count(stmt: Any, start: datetime) -> Any:
    from sqlalchemy import case

    return case(
        (RateLimitBucket.window_start == start, RateLimitBucket.count + 1),
        else_=1,
    )
