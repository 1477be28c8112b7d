"""The console's home page: health at a glance, from the IdP state, the environments and the
audit log.

Every audit action the page reads is named here and nowhere else:

==============================  =============================================================
``SIGN_IN_ACTIONS``             sign-ins per hour and failures by reason: the console's web
                                sign-in (``login.oidc``), break-glass passwords
                                (``login.password``) and tools' token exchange
                                (``token.exchange``)
``UNREACHABLE_REASONS``         a ``login.oidc`` failure for these reasons means the IdP could
                                not be reached (or its discovery document was unusable)
``REFRESH_FAILED``              ``session.refresh_failed``: the IdP refused (or could not be
                                asked for) a console session's refresh
``IDP_TEST``                    ``idp.test`` with outcome ``failure``: the admin's Test failed
``WARNING``                     any action with outcome ``warning`` (e.g. a sign-in whose
                                groups claim was left out, "group overage": the user kept their
                                previous group roles)
==============================  =============================================================

Fast at any audit size: each figure is one aggregate or one ``LIMIT`` query served by the
indexes of migration 0011 (``(action, outcome, at, reason)`` and ``(outcome, at)``; every
query names its actions and outcomes, so each pair is one index range on ``at``); nothing reads
the audit rows one by one (``bench/home_page.py`` measures it at 100,000 rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from gatehouse.domain import environments
from gatehouse.domain.environments import EnvironmentView
from gatehouse.domain.idp_state import display_name, get_state
from gatehouse.store.models import AuditEvent, User, utcnow

SIGN_IN_ACTIONS = ("login.oidc", "login.password", "token.exchange")
UNREACHABLE_REASONS = ("idp_unavailable", "discovery_failed")
REFRESH_FAILED = "session.refresh_failed"
IDP_TEST = "idp.test"
WARNING = "warning"

#: the chart's window, and how far back "recent problems" look
WINDOW_HOURS = 24
PROBLEMS_DAYS = 7
PROBLEMS_SHOWN = 8
#: events read per kind of problem (the page says "50 or more" past it)
PROBLEMS_COUNTED = 50


@dataclass(frozen=True)
class SsoState:
    active: bool
    idp_name: str
    #: the configuration version sign-ins use (None: single sign-on is off)
    live_version: int | None
    #: the newest saved version (may be newer than the live one)
    saved_version: int | None
    last_test_version: int | None
    last_test_ok: bool
    last_test_at: datetime | None


@dataclass(frozen=True)
class HourBucket:
    start: datetime
    succeeded: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True)
class Problem:
    """One kind of problem (same kind, action and reason), how often, and when last."""

    at: datetime
    kind: str
    action: str
    reason: str | None
    count: int
    #: ``count`` stopped at :data:`PROBLEMS_COUNTED` (there were at least that many)
    more: bool = False


@dataclass
class Home:
    sso: SsoState
    environments: list[EnvironmentView]
    users: int
    hours: list[HourBucket]
    failures: list[tuple[str, int]]
    problems: list[Problem] = field(default_factory=list)

    @property
    def sign_ins(self) -> int:
        return sum(h.total for h in self.hours)

    @property
    def failed(self) -> int:
        return sum(h.failed for h in self.hours)


def live_version(db: Session) -> int | None:
    """The configuration version sign-ins use: the one place that knows where that is kept.

    Today the active configuration is the current one; when saved versions can be drafts
    (a separate live version), this function reads that instead and the page follows."""
    state = get_state(db)
    return state.current_version if state.active else None


def sso_state(db: Session) -> SsoState:
    state = get_state(db)
    return SsoState(
        active=state.active,
        idp_name=display_name(db),
        live_version=live_version(db),
        saved_version=state.current_version,
        last_test_version=state.last_test_version,
        last_test_ok=state.last_test_ok,
        last_test_at=state.last_test_at,
    )


def _hour(db: Session) -> ColumnElement[Any]:
    """The UTC hour an audit row falls in, as text ``YYYY-MM-DD HH``, on either database
    (SQLite stores UTC text; PostgreSQL's ``timestamptz`` is read in UTC, whatever the
    server's time zone)."""
    if db.get_bind().dialect.name == "postgresql":
        utc = func.timezone("UTC", AuditEvent.at)
        return func.to_char(func.date_trunc("hour", utc), "YYYY-MM-DD HH24")
    # SQLAlchemy stores SQLite datetimes as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC here): the
    # first 13 characters are the hour, cheaper than strftime on every row
    return func.substr(AuditEvent.at, 1, 13)


def sign_ins_per_hour(db: Session, now: datetime) -> list[HourBucket]:
    """Sign-ins (every action of ``SIGN_IN_ACTIONS``) in each of the last 24 hours, oldest
    first, split into succeeded and failed; one GROUP BY over the index."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=WINDOW_HOURS)
    hour = _hour(db)
    rows = db.execute(
        select(hour, AuditEvent.outcome, func.count())
        .where(
            AuditEvent.action.in_(SIGN_IN_ACTIONS),
            AuditEvent.outcome.in_(("success", "failure")),
            AuditEvent.at >= start,
        )
        .group_by(hour, AuditEvent.outcome)
    )
    counts: dict[str, dict[str, int]] = {}
    for bucket, outcome, n in rows:
        counts.setdefault(str(bucket), {})[str(outcome)] = int(n)
    hours = []
    for i in range(WINDOW_HOURS):
        begins = start + timedelta(hours=i)
        found = counts.get(begins.strftime("%Y-%m-%d %H"), {})
        hours.append(HourBucket(begins, found.get("success", 0), found.get("failure", 0)))
    return hours


def failures_by_reason(db: Session, since: datetime) -> list[tuple[str, int]]:
    """Failed sign-ins since ``since`` per reason, most frequent first."""
    reason = func.coalesce(AuditEvent.reason, "unknown")
    rows = db.execute(
        select(reason, func.count())
        .where(
            AuditEvent.action.in_(SIGN_IN_ACTIONS),
            AuditEvent.at >= since,
            AuditEvent.outcome == "failure",
        )
        .group_by(reason)
        .order_by(func.count().desc(), reason)
    )
    return [(str(r), int(n)) for r, n in rows]


def _latest(db: Session, stmt: Select[AuditEvent], kind: str) -> list[Problem]:
    """The newest events of ``stmt`` (at most :data:`PROBLEMS_COUNTED`), one :class:`Problem`
    per action and reason: a backward index range scan, never a count of the whole log."""
    rows = db.execute(
        stmt.with_only_columns(AuditEvent.at, AuditEvent.action, AuditEvent.reason)
        .order_by(AuditEvent.at.desc())
        .limit(PROBLEMS_COUNTED)
    ).all()
    groups: dict[tuple[str, str | None], list[datetime]] = {}
    for at, action, reason in rows:
        groups.setdefault((action, reason), []).append(at)
    capped = len(rows) == PROBLEMS_COUNTED
    return [
        Problem(times[0], kind, action, reason, len(times), capped)
        for (action, reason), times in groups.items()
    ]


def recent_problems(db: Session, since: datetime) -> list[Problem]:
    """The problems of every kind the module docstring lists, newest first."""
    base = select(AuditEvent).where(AuditEvent.at >= since)
    found = [
        *_latest(
            db,
            base.where(
                AuditEvent.action == "login.oidc",
                AuditEvent.outcome == "failure",
                AuditEvent.reason.in_(UNREACHABLE_REASONS),
            ),
            "Identity provider unreachable at sign-in",
        ),
        *_latest(
            db,
            base.where(AuditEvent.action == REFRESH_FAILED, AuditEvent.outcome == "failure"),
            "Session refresh failed",
        ),
        *_latest(
            db,
            base.where(AuditEvent.action == IDP_TEST, AuditEvent.outcome == "failure"),
            "Identity provider test failed",
        ),
        *_latest(db, base.where(AuditEvent.outcome == WARNING), "Warning"),
    ]
    found.sort(key=lambda p: p.at, reverse=True)
    return found[:PROBLEMS_SHOWN]


def home(db: Session, now: datetime | None = None) -> Home:
    """Everything the home page shows."""
    now = now or utcnow()
    hours = sign_ins_per_hour(db, now)
    return Home(
        sso=sso_state(db),
        environments=environments.view(db, now),
        users=int(db.scalar(select(func.count()).select_from(User)) or 0),
        hours=hours,
        failures=failures_by_reason(db, hours[0].start),
        problems=recent_problems(db, now - timedelta(days=PROBLEMS_DAYS)),
    )


__all__: Sequence[str] = (
    "IDP_TEST",
    "REFRESH_FAILED",
    "SIGN_IN_ACTIONS",
    "UNREACHABLE_REASONS",
    "WARNING",
    "Home",
    "home",
    "live_version",
)
