"""Prerequisites: the minimum versions every registered environment must report.

OIDC activation is refused while any environment fails them (DESIGN: "Safe activation"), so each
failure is a sentence an administrator can act on: which environment, which component, what it
reports and what it needs. The minimum sync protocol version lives in the same table under the
reserved component name :data:`PROTOCOL_COMPONENT`, so one editor covers both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse import PROTOCOL_VERSION
from gatehouse.store.models import Environment, Prerequisite

#: The Prerequisite row that holds the minimum sync protocol version (an integer).
PROTOCOL_COMPONENT = "gatehouse_protocol"
#: An environment silent for longer than this cannot vouch for its versions.
MAX_SILENCE = timedelta(minutes=5)


@dataclass(frozen=True)
class PrerequisiteFailure:
    """One reason an environment does not meet the prerequisites."""

    environment: str
    reason: str
    #: The component at fault (``None`` when the environment as a whole is at fault).
    component: str | None = None


def minimums(db: Session) -> dict[str, str]:
    """Component -> minimum version, without the protocol row."""
    rows = db.scalars(select(Prerequisite).order_by(Prerequisite.component))
    return {r.component: r.min_version for r in rows if r.component != PROTOCOL_COMPONENT}


def minimum_protocol(db: Session) -> int:
    """The minimum sync protocol version; the current one when nobody has set it."""
    row = db.get(Prerequisite, PROTOCOL_COMPONENT)
    if row is None:
        return PROTOCOL_VERSION
    try:
        return int(row.min_version)
    except ValueError:
        return PROTOCOL_VERSION


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def check_environment(
    env: Environment, mins: dict[str, str], min_protocol: int, now: datetime
) -> list[PrerequisiteFailure]:
    """Every reason ``env`` fails; empty when it meets all prerequisites."""
    name = env.name
    if env.last_seen_at is None or not env.versions:
        return [PrerequisiteFailure(name, f"{name} has not reported its versions")]
    failures: list[PrerequisiteFailure] = []
    silence = now - env.last_seen_at
    if silence > MAX_SILENCE:
        failures.append(
            PrerequisiteFailure(
                name,
                f"{name} has not reported in the last {int(MAX_SILENCE.total_seconds() // 60)} "
                f"minutes (last seen {_ago(silence)})",
            )
        )
    protocol = env.protocol_version
    if protocol is None or protocol < min_protocol:
        failures.append(
            PrerequisiteFailure(
                name,
                f"{name} speaks sync protocol {protocol if protocol is not None else 'unknown'}, "
                f"needs >= {min_protocol}",
                PROTOCOL_COMPONENT,
            )
        )
    for component, minimum in mins.items():
        failure = _component_failure(name, component, minimum, env.versions.get(component))
        if failure is not None:
            failures.append(failure)
    return failures


def _component_failure(
    name: str, component: str, minimum: str, reported: object
) -> PrerequisiteFailure | None:
    """Why the version ``name`` reports for ``component`` fails its minimum, or None."""
    if reported is None:
        return PrerequisiteFailure(
            name, f"{name} does not report {component}, needs >= {minimum}", component
        )
    try:
        needed = Version(minimum)
    except InvalidVersion:
        return PrerequisiteFailure(
            name,
            f"the minimum for {component} ({minimum!r}) is not a version; fix the "
            "prerequisites table",
            component,
        )
    try:
        actual = Version(str(reported))
    except InvalidVersion:
        return PrerequisiteFailure(
            name,
            f"{name} reports {component} {str(reported)!r}, which is not a version "
            f"(needs >= {minimum})",
            component,
        )
    if actual < needed:
        return PrerequisiteFailure(
            name, f"{name} reports {component} {reported}, needs >= {minimum}", component
        )
    return None


def environment_failures(db: Session, now: datetime | None = None) -> list[PrerequisiteFailure]:
    """Every failure of every registered environment; empty (green) when none are registered."""
    now = now or datetime.now(UTC)
    mins = minimums(db)
    min_protocol = minimum_protocol(db)
    failures: list[PrerequisiteFailure] = []
    for env in db.scalars(select(Environment).order_by(Environment.name)):
        failures.extend(check_environment(env, mins, min_protocol, now))
    return failures
