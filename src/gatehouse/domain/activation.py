"""Safe activation of OIDC sign-in: every precondition checked by name, refusals name them all.

DESIGN, "Safe activation": OIDC can only be activated when

* ``config_tested`` — the last test of the *current* configuration version is green;
* ``local_admin_exists`` — an enabled local admin with a password exists (break-glass);
* ``caller_is_local_admin`` — the caller is a local admin (so the person activating is the one
  who can still get in when the IdP breaks);
* ``environments_ready`` — every registered environment meets the prerequisite versions.

Activation turns on the password policy (``IdPState.active``) and ends the password sessions
of every user who is not a local admin; deactivation (local admins only) turns it off, and
users who had passwords can use them again (their hashes were kept).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.domain import audit, changes, users
from gatehouse.domain.audit import Actor
from gatehouse.domain.errors import Conflict, Forbidden
from gatehouse.domain.idp_state import get_state
from gatehouse.domain.prerequisites import environment_failures
from gatehouse.store.models import User, utcnow

DbFactory = Callable[[], AbstractContextManager[Session]]

__all__ = ["Precondition", "activate", "check_preconditions", "deactivate"]


@dataclass(frozen=True)
class Precondition:
    """One precondition: its stable ``name``, whether it holds, and a sentence saying why."""

    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _config_tested(db: Session) -> Precondition:
    state = get_state(db)
    name = "config_tested"
    if state.current_version is None:
        return Precondition(name, False, "No identity provider is configured yet.")
    if state.last_test_version != state.current_version:
        return Precondition(
            name,
            False,
            f"Configuration version {state.current_version} has not been tested; press Test.",
        )
    if not state.last_test_ok:
        return Precondition(
            name,
            False,
            f"The last test of configuration version {state.current_version} failed; fix the "
            "failed checks and test again.",
        )
    return Precondition(
        name, True, f"Configuration version {state.current_version} passed its last test."
    )


def _local_admin_exists(db: Session) -> Precondition:
    count = int(
        db.scalar(
            select(func.count())
            .select_from(User)
            .where(
                User.local_admin.is_(True),
                User.status == "active",
                User.password_hash.is_not(None),
            )
        )
        or 0
    )
    if count == 0:
        return Precondition(
            "local_admin_exists",
            False,
            "No enabled local admin with a password exists: create one first, so that a broken "
            "identity provider never locks the organisation out.",
        )
    return Precondition(
        "local_admin_exists", True, f"{count} enabled local admin(s) with a password exist."
    )


def _caller_is_local_admin(actor: Actor) -> Precondition:
    if not actor.local_admin:
        return Precondition(
            "caller_is_local_admin",
            False,
            "Only a local admin can activate single sign-on (you are not one).",
        )
    return Precondition("caller_is_local_admin", True, f"{actor.name} is a local admin.")


def _environments_ready(db: Session) -> Precondition:
    failures = environment_failures(db)
    if failures:
        return Precondition(
            "environments_ready",
            False,
            "Not every environment meets the prerequisites: "
            + "; ".join(f.reason for f in failures)
            + ".",
        )
    return Precondition(
        "environments_ready",
        True,
        "Every registered environment meets the prerequisites (or none is registered).",
    )


def check_preconditions(db: Session, actor: Actor) -> list[Precondition]:
    """Every precondition, in a fixed order (also shown as the console's checklist)."""
    return [
        _config_tested(db),
        _local_admin_exists(db),
        _caller_is_local_admin(actor),
        _environments_ready(db),
    ]


def activate(db_factory: DbFactory, actor: Actor) -> None:
    """Turn OIDC sign-in on, or refuse naming every failed precondition.

    Takes a unit-of-work factory so that a refusal is audited (committed) although refused.

    :raises Conflict: ``activation_refused`` with ``failed``: ``[{name, ok, detail}]``
    """
    refusal: Conflict | None = None
    with db_factory() as db:
        state = get_state(db, for_update=True)
        failed = [p for p in check_preconditions(db, actor) if not p.ok]
        if failed:
            audit.record(
                db,
                actor,
                "idp.activate",
                outcome="failure",
                reason="preconditions",
                details={"failed": [p.name for p in failed]},
            )
            refusal = Conflict(
                "Single sign-on cannot be activated yet: " + " ".join(p.detail for p in failed),
                code="activation_refused",
                failed=[p.as_dict() for p in failed],
            )
        elif not state.active:
            state.active = True
            state.changed_at = utcnow()
            state.changed_by = actor.name
            state.revision = (state.revision or 0) + 1
            ended = users.end_sessions(
                db, reason="oidc_activated", method="password", exclude_local_admins=True
            )
            changes.touch(db, "idp_state", 1)
            audit.record(
                db,
                actor,
                "idp.activate",
                target_type="idp_config",
                target_id=state.current_version,
                details={"password_sessions_ended": ended},
            )
    if refusal is not None:
        raise refusal


def deactivate(db: Session, actor: Actor) -> None:
    """Turn OIDC sign-in off (local admins only); password sign-in works again for users who
    had a password.

    :raises Forbidden: the caller is not a local admin
    """
    if not actor.local_admin:
        raise Forbidden("Only a local admin can deactivate single sign-on.", code="forbidden")
    state = get_state(db, for_update=True)
    if not state.active:
        return
    state.active = False
    state.changed_at = utcnow()
    state.changed_by = actor.name
    state.revision = (state.revision or 0) + 1
    changes.touch(db, "idp_state", 1)
    audit.record(
        db, actor, "idp.deactivate", target_type="idp_config", target_id=state.current_version
    )
