"""Whether OIDC is active, read and changed in one place (the singleton ``idp_state`` row)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.domain.policy import PasswordPolicy
from gatehouse.store.models import IdPConfig, IdPState


def get_state(db: Session, *, for_update: bool = False) -> IdPState:
    """The singleton row. Within one unit of work the identity map answers repeated reads (a
    page asks for the state, then the display name, which needs it again)."""
    if for_update:
        state = db.scalar(select(IdPState).where(IdPState.id == 1).with_for_update())
    else:
        state = db.get(IdPState, 1)
    if state is None:
        state = IdPState(id=1, active=False, last_test_report=[])
        db.add(state)
        db.flush()
    return state


def current_config(db: Session) -> IdPConfig | None:
    state = get_state(db)
    if state.current_version is None:
        return None
    return db.get(IdPConfig, state.current_version)


def display_name(db: Session) -> str:
    config = current_config(db)
    name = (config.data.get("display_name") if config else None) or ""
    return str(name) or "your identity provider"


def password_policy(db: Session) -> PasswordPolicy:
    state = get_state(db)
    return PasswordPolicy(oidc_active=state.active, idp_name=display_name(db))
