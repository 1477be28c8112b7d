"""Signing keys shared through the database: two token services stand in for two replicas."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from gatehouse.domain.access_tokens import AccessTokenService
from gatehouse.runtime import Runtime
from gatehouse.store.models import SigningKey


def _service(runtime: Runtime) -> AccessTokenService:
    return AccessTokenService(
        runtime.db.session,
        runtime.box,
        issuer=runtime.settings.public_url,
        audience=runtime.settings.public_url,
        lifetime=timedelta(minutes=10),
    )


def test_key_made_by_another_replica_a_moment_ago_verifies_at_once(runtime: Runtime) -> None:
    """The unknown-kid cooldown counts from the last miss, not from start-up."""
    b = _service(runtime)
    b.load_keys()  # B has just started
    a = _service(runtime)
    a.load_keys()
    a.rotate_signing_key()  # A makes a key B has never seen
    token, _ = a.issue("7")
    assert b.verify(token)["sub"] == "7"
    assert len(b.jwks()["keys"]) == len(a.jwks()["keys"])


def test_replicas_starting_together_share_one_new_signing_key(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        for row in db.scalars(select(SigningKey)):
            db.delete(row)
    services = [_service(runtime) for _ in range(4)]
    barrier = threading.Barrier(len(services))

    def start(service: AccessTokenService) -> None:
        barrier.wait()
        service.load_keys()

    threads = [threading.Thread(target=start, args=(s,)) for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with runtime.db.session() as db:
        assert db.scalar(select(func.count()).select_from(SigningKey)) == 1
    kids = {s.jwks()["keys"][0]["kid"] for s in services}
    assert len(kids) == 1
