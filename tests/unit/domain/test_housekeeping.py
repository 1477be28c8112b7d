"""Housekeeping deletes what has expired — and nothing that still counts — on SQLite and
PostgreSQL, and runs by itself in every serving process."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select

from gatehouse.domain import housekeeping
from gatehouse.metrics import HOUSEKEEPING_DELETED
from gatehouse.runtime import Runtime
from gatehouse.store.models import (
    AuditEvent,
    LoginAttempt,
    OIDCFlow,
    RateLimitBucket,
    SeenJTI,
    Session,
    utcnow,
)


def add_session(rt: Runtime, user_id: int, name: str, **fields: datetime) -> None:
    now = utcnow()
    values = {"expires_at": now + timedelta(hours=1), **fields}
    with rt.db.session() as db:
        db.add(
            Session(
                id_hash=name.ljust(64, "0"),
                user_id=user_id,
                method="password",
                csrf_secret="c" * 64,
                created_at=now,
                last_seen_at=now,
                **values,
            )
        )


def remaining(rt: Runtime, column: object) -> list[str]:
    with rt.db.session() as db:
        return sorted(str(v) for v in db.scalars(select(column)))  # type: ignore[call-overload]


def seed(rt: Runtime, user_id: int, now: datetime) -> None:
    old, recent = now - timedelta(days=2), now - timedelta(hours=1)
    add_session(rt, user_id, "live")
    add_session(rt, user_id, "expired-long-ago", expires_at=old)
    add_session(rt, user_id, "revoked-long-ago", revoked_at=old)
    add_session(rt, user_id, "revoked-recently", revoked_at=recent)
    with rt.db.session() as db:
        for name, expires in (("flow-live", now + timedelta(minutes=5)), ("flow-old", recent)):
            db.add(
                OIDCFlow(
                    state_hash=name,
                    browser_hash="b",
                    data_enc=b"x",
                    config_version=1,
                    created_at=recent,
                    expires_at=expires,
                )
            )
        db.add(SeenJTI(jti_hash="jti-live", expires_at=now + timedelta(minutes=5)))
        db.add(SeenJTI(jti_hash="jti-old", expires_at=recent))
        db.add(LoginAttempt(username_key="attempt-recent", ip="192.0.2.1", at=recent))
        db.add(LoginAttempt(username_key="attempt-old", ip="192.0.2.1", at=old))
        db.add(RateLimitBucket(key="bucket-live", window_start=now, count=3))
        db.add(RateLimitBucket(key="bucket-idle", window_start=now - timedelta(hours=2), count=1))


def test_run_once_deletes_only_what_has_expired(
    runtime: Runtime, make_user: Callable[..., int]
) -> None:
    now = utcnow()
    seed(runtime, make_user("alice"), now)
    with runtime.db.session() as db:
        audit_rows = db.scalar(select(func.count()).select_from(AuditEvent))
    before = HOUSEKEEPING_DELETED.labels(table="sessions")._value.get()

    deleted = housekeeping.run_once(runtime.db, lockout_minutes=5, now=now)

    assert deleted == {
        "sessions": 2,
        "oidc_flows": 1,
        "seen_jtis": 1,
        "login_attempts": 1,
        "rate_limit_buckets": 1,
    }
    assert [s[:16].rstrip("0") for s in remaining(runtime, Session.id_hash)] == [
        "live",
        "revoked-recently",
    ]
    assert remaining(runtime, OIDCFlow.state_hash) == ["flow-live"]
    assert remaining(runtime, SeenJTI.jti_hash) == ["jti-live"]
    assert remaining(runtime, LoginAttempt.username_key) == ["attempt-recent"]
    assert remaining(runtime, RateLimitBucket.key) == ["bucket-live"]
    with runtime.db.session() as db:
        assert db.scalar(select(func.count()).select_from(AuditEvent)) == audit_rows
    assert HOUSEKEEPING_DELETED.labels(table="sessions")._value.get() == before + 2
    assert set(housekeeping.run_once(runtime.db, lockout_minutes=5, now=now).values()) == {0}


def test_long_lockout_windows_keep_their_attempts(
    runtime: Runtime, make_user: Callable[..., int]
) -> None:
    now = utcnow()
    seed(runtime, make_user("alice"), now)
    deleted = housekeeping.run_once(runtime.db, lockout_minutes=3 * 24 * 60, now=now)
    assert deleted["login_attempts"] == 0


def test_the_housekeeper_runs_by_itself_and_stops(
    runtime: Runtime, make_user: Callable[..., int]
) -> None:
    seed(runtime, make_user("alice"), utcnow())
    keeper = housekeeping.Housekeeper(
        runtime.db, lockout_minutes=5, interval=0.05, jitter=lambda: 0.0
    )
    keeper.start()
    try:
        deadline = time.monotonic() + 10
        while "flow-old" in remaining(runtime, OIDCFlow.state_hash):
            assert time.monotonic() < deadline, "housekeeping did not run"
            time.sleep(0.05)
    finally:
        keeper.stop()
    assert remaining(runtime, SeenJTI.jti_hash) == ["jti-live"]
