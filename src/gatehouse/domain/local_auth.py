"""Password sign-in for local admins (break-glass) — and, while OIDC is off, everyone.

Lockout: ``lockout_attempts`` failures for one account within ``lockout_minutes`` lock it until
the oldest of those failures leaves the window; a client IP is throttled the same way with a
higher threshold. Unknown usernames are counted and verified against a dummy hash, so they cost
the same time and lock out the same way as real ones (no user enumeration).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.domain import audit, passwords
from gatehouse.domain.audit import Actor
from gatehouse.domain.errors import (
    DomainError,
    PasswordNotAllowed,
    TooManyAttempts,
    Unauthenticated,
)
from gatehouse.domain.idp_state import password_policy
from gatehouse.domain.users import find_by_username, username_key
from gatehouse.store.models import LoginAttempt, User, utcnow

DbFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class LockoutRules:
    attempts: int = 5
    window: timedelta = timedelta(minutes=5)
    ip_attempts: int = 20


def _retry_message(seconds: int, when: datetime, what: str) -> str:
    minutes = ceil(seconds / 60)
    unit = "minute" if minutes == 1 else "minutes"
    return (
        f"Too many failed sign-in attempts {what}. Try again in {minutes} {unit} "
        f"(after {when:%H:%M:%S} UTC)."
    )


def _blocked_until(
    db: Session,
    column: Any,
    value: str,
    limit: int,
    window: timedelta,
    now: datetime,
    *,
    reset_on_success: bool,
) -> datetime | None:
    """When the lock lifts, or None: the limit-th most recent failure in the window.

    For an account, a successful sign-in starts the count afresh; for an address it does not
    (one valid account must not let an attacker reset the throttle of the whole address).
    """
    since = now - window
    if reset_on_success:
        last_ok = db.scalar(
            select(func.max(LoginAttempt.at)).where(
                column == value, LoginAttempt.success.is_(True), LoginAttempt.at >= since
            )
        )
        if last_ok is not None:
            since = max(since, last_ok)
    failures = list(
        db.scalars(
            select(LoginAttempt.at)
            .where(column == value, LoginAttempt.success.is_(False), LoginAttempt.at > since)
            .order_by(LoginAttempt.at.desc())
            .limit(limit)
        )
    )
    if len(failures) < limit:
        return None
    return failures[-1] + window


def check_not_locked(db: Session, rules: LockoutRules, key: str, ip: str) -> None:
    now = utcnow()
    until = _blocked_until(
        db, LoginAttempt.ip, ip, rules.ip_attempts, rules.window, now, reset_on_success=False
    )
    if until is not None:
        secs = int((until - now).total_seconds()) + 1
        raise TooManyAttempts(
            _retry_message(secs, until, "from your address"), retry_after=secs, code="rate_limited"
        )
    until = _blocked_until(
        db,
        LoginAttempt.username_key,
        key,
        rules.attempts,
        rules.window,
        now,
        reset_on_success=True,
    )
    if until is not None:
        secs = int((until - now).total_seconds()) + 1
        raise TooManyAttempts(
            _retry_message(secs, until, "for this account"), retry_after=secs, code="locked_out"
        )


def authenticate(
    db_factory: DbFactory, rules: LockoutRules, username: str, password: str, ip: str
) -> int:
    """Check a password sign-in; returns the user id. Every outcome is audited.

    Raises Unauthenticated (invalid_credentials), TooManyAttempts (locked_out / rate_limited),
    PasswordNotAllowed (policy rule c) or Unauthenticated (account_disabled).
    """
    key = username_key(username)[:150] if isinstance(username, str) else ""
    failure: DomainError | None = None
    user_id: int | None = None
    with db_factory() as db:
        try:
            check_not_locked(db, rules, key, ip)
        except TooManyAttempts as exc:
            # Audit the refusal in this (committed) unit of work, then refuse.
            audit.record(
                db,
                Actor(None, username[:150], ip),
                "login.password",
                outcome="failure",
                reason=exc.code,
            )
            failure = exc
        if failure is None:
            user_id, failure = _check_password(db, key, username, password, ip)
    if failure is not None:
        raise failure
    assert user_id is not None
    return user_id


def _check_password(
    db: Session, key: str, username: str, password: str, ip: str
) -> tuple[int | None, DomainError | None]:
    user = find_by_username(db, username) if key else None
    ok = passwords.verify_password(user.password_hash if user else None, password)
    failure: DomainError | None = None
    reason = ""
    if user is None:
        failure, reason = _invalid(), "unknown_user"
    elif not ok:
        failure, reason = _invalid(), "bad_password"
    elif user.status != "active":
        failure = Unauthenticated(
            "This account is disabled. Ask an administrator.", code="account_disabled"
        )
        reason = "disabled"
    else:
        try:
            password_policy(db).check_sign_in(local_admin=user.local_admin)
        except PasswordNotAllowed as exc:
            failure, reason = exc, "password_not_allowed"
    if failure is None or reason in ("unknown_user", "bad_password"):
        # Refusals after a correct password (disabled, policy) neither count nor reset.
        db.add(LoginAttempt(username_key=key, ip=ip, success=failure is None))
    who = Actor(user.id if user else None, user.username if user else username[:150], ip)
    if failure is not None:
        audit.record(
            db,
            who,
            "login.password",
            outcome="failure",
            reason=reason,
            target_type="user",
            target_id=user.id if user else None,
        )
        return None, failure
    assert user is not None
    audit.record(db, who, "login.password", target_type="user", target_id=user.id)
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return user.id, None


def _invalid() -> Unauthenticated:
    return Unauthenticated("Invalid username or password.", code="invalid_credentials")


def is_user_password_usable(user: User, oidc_active: bool) -> bool:
    return user.password_hash is not None and (user.local_admin or not oidc_active)
