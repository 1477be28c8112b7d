"""The console's sync feed (sync/feed.py): a page holds only what changed, in a bounded number of
statements; an environment behind the retained change log gets a paged snapshot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from gatehouse.domain import changes, environments, users
from gatehouse.domain.audit import Actor
from gatehouse.runtime import Runtime
from gatehouse.store.models import ChangeLog, User
from gatehouse.sync import feed

SYSTEM = Actor.system("test")


def _statements(runtime: Runtime, fn: Callable[[], Any]) -> tuple[Any, int]:
    count = 0

    def before(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(runtime.db.engine, "before_cursor_execute", before)
    try:
        return fn(), count
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", before)


@pytest.mark.parametrize("population", [10, 400])
def test_incremental_page_loads_only_changed_users(runtime: Runtime, population: int) -> None:
    with runtime.db.session() as db:
        env, _ = environments.register(
            db,
            SYSTEM,
            name="dev",
            base_url="https://d.example.com",
            kind="dev",
            allow_insecure_http=False,
        )
        for i in range(population):
            db.add(User(username=f"u{i}", username_key=f"u{i}", display_name=f"u{i}"))
        db.flush()
        since = changes.latest_revision(db)
        changed = list(db.scalars(select(User).order_by(User.id).limit(10)))
        for user in changed:
            user.display_name = "changed"
            changes.touch(db, "user", user.id)
    with runtime.db.session() as db:
        env = environments.get(db, env.id)
        known = feed.idp_fingerprint(db)
        page, statements = _statements(
            runtime, lambda: feed.build(db, runtime.box, env, since=since, known_idp=known)
        )
    assert page is not None and not page.body["full"]
    assert sorted(u["id"] for u in page.body["users"]) == sorted(u.id for u in changed)
    assert statements <= 8  # idp state, change-log range, changed users and their roles


def test_environment_behind_the_retained_feed_gets_a_paged_snapshot(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        env, _ = environments.register(
            db,
            SYSTEM,
            name="dev",
            base_url="https://d.example.com",
            kind="dev",
            allow_insecure_http=False,
        )
        for i in range(5):
            users.create_user(db, SYSTEM, username=f"p{i}")
    old = datetime.now(UTC) + timedelta(days=30)
    with runtime.db.session() as db:
        users.create_user(db, SYSTEM, username="latest")
    with runtime.db.session() as db:
        assert feed.prune(db, now=old) > 0
        assert db.scalar(select(ChangeLog.revision).order_by(ChangeLog.revision)) is not None
    with runtime.db.session() as db:
        env = environments.get(db, env.id)
        first = feed.build(db, runtime.box, env, since=1, page_size=4)
        assert first is not None and first.body["full"] and first.body["more"]
        rest = feed.build(
            db,
            runtime.box,
            env,
            since=first.body["revision"],
            cursor=first.body["cursor"],
            page_size=4,
        )
        assert rest is not None and not rest.body["more"]
    names = [u["username"] for u in first.body["users"] + rest.body["users"]]
    assert names == ["p0", "p1", "p2", "p3", "p4", "latest"]
