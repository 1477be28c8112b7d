"""Single-use credentials: a logout token, or an ID token exchanged by a tool, counts once.

Each use is an INSERT on a unique key in its own transaction, so two replicas never both accept
one credential; housekeeping deletes entries once the credential could no longer validate anyway.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError

from gatehouse.domain.crypto import sha256_hex
from gatehouse.store.db import Database
from gatehouse.store.models import SeenJTI


def first_use(db: Database, key: str, expires_at: datetime) -> bool:
    """True the first time ``key`` is seen; False for every later use while it is remembered
    (at least until ``expires_at``; housekeeping forgets it after that).

    ``key`` is stored only as a SHA-256; ``expires_at`` must be no earlier than the moment the
    credential stops validating, so that it cannot be replayed once forgotten.
    """
    try:
        with db.session() as session:
            session.add(SeenJTI(jti_hash=sha256_hex(key), expires_at=expires_at))
    except IntegrityError:
        return False
    return True
