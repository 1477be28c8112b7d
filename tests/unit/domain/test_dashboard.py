"""The home page's figures, read from a real audit log on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gatehouse.domain import dashboard
from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent

NOW = datetime(2027, 3, 14, 9, 40, tzinfo=UTC)


def add(rt: Runtime, at: datetime, action: str, outcome: str = "success", **kw: str) -> None:
    with rt.db.session() as db:
        db.add(AuditEvent(at=at, actor="t", action=action, outcome=outcome, details={}, **kw))


def test_sign_ins_are_counted_per_utc_hour_over_the_last_day(runtime: Runtime) -> None:
    add(runtime, NOW - timedelta(minutes=5), "login.oidc")  # 09:35, this hour
    add(runtime, NOW.replace(minute=0), "token.exchange")  # 09:00 sharp, this hour
    add(runtime, NOW - timedelta(minutes=45), "login.password", "failure", reason="bad_password")
    add(runtime, NOW - timedelta(hours=23, minutes=39), "login.oidc")  # 10:01 yesterday: first
    add(runtime, NOW - timedelta(hours=23, minutes=41), "login.oidc")  # 09:59 yesterday: out
    add(runtime, NOW - timedelta(minutes=1), "user.create")  # not a sign-in
    with runtime.db.session() as db:
        hours = dashboard.sign_ins_per_hour(db, NOW)
    assert len(hours) == 24
    assert hours[0].start == datetime(2027, 3, 13, 10, tzinfo=UTC)
    assert hours[-1].start == datetime(2027, 3, 14, 9, tzinfo=UTC)
    assert (hours[0].succeeded, hours[0].failed) == (1, 0)
    assert (hours[-1].succeeded, hours[-1].failed) == (2, 0)
    assert (hours[-2].succeeded, hours[-2].failed) == (0, 1)  # 08:55
    assert sum(h.total for h in hours) == 4


def test_failures_by_reason_most_frequent_first(runtime: Runtime) -> None:
    for reason, n in (("unknown_user", 1), ("access_denied", 3), ("bad_password", 2)):
        for _ in range(n):
            add(runtime, NOW - timedelta(hours=1), "login.oidc", "failure", reason=reason)
    add(runtime, NOW - timedelta(days=2), "login.oidc", "failure", reason="stale")
    add(runtime, NOW - timedelta(hours=1), "idp.test", "failure", reason="not_a_sign_in")
    with runtime.db.session() as db:
        found = dashboard.failures_by_reason(db, NOW - timedelta(hours=24))
    assert found == [("access_denied", 3), ("bad_password", 2), ("unknown_user", 1)]


def test_recent_problems_group_each_kind_and_read_only_the_named_actions(
    runtime: Runtime,
) -> None:
    for minutes in (50, 40):
        add(
            runtime,
            NOW - timedelta(minutes=minutes),
            "login.oidc",
            "failure",
            reason="idp_unavailable",
        )
    add(runtime, NOW - timedelta(minutes=30), "login.oidc", "failure", reason="unknown_user")
    add(runtime, NOW - timedelta(minutes=20), dashboard.REFRESH_FAILED, "failure", reason="x")
    add(runtime, NOW - timedelta(minutes=10), dashboard.IDP_TEST, "failure")
    add(runtime, NOW - timedelta(minutes=5), "user.group_roles", dashboard.WARNING, reason="w")
    add(runtime, NOW - timedelta(days=8), dashboard.REFRESH_FAILED, "failure", reason="old")
    with runtime.db.session() as db:
        problems = dashboard.recent_problems(db, NOW - timedelta(days=7))
    assert [(p.action, p.reason, p.count) for p in problems] == [
        ("user.group_roles", "w", 1),
        (dashboard.IDP_TEST, None, 1),
        (dashboard.REFRESH_FAILED, "x", 1),
        ("login.oidc", "idp_unavailable", 2),
    ]
    assert problems[-1].at == NOW - timedelta(minutes=40)


def test_the_live_version_is_the_active_configuration(runtime: Runtime) -> None:
    from gatehouse.domain.idp_state import get_state

    with runtime.db.session() as db:
        assert dashboard.live_version(db) is None
        state = get_state(db)
        state.current_version, state.active = 3, False
    with runtime.db.session() as db:
        assert dashboard.live_version(db) is None  # saved, not live
        get_state(db).active = True
    with runtime.db.session() as db:
        assert dashboard.live_version(db) == 3
        assert dashboard.sso_state(db).live_version == 3
