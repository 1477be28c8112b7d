"""Sync cost with 100,000 users and 10 changes vs 10 users and 10 changes.

    python bench/sync.py [--users 100000]

One sync step, end to end but in process: the console builds the incremental page
(``sync.feed.build``), it is serialised to JSON and parsed back, and an environment replica that
already holds the same directory applies it (``sync.replica.apply_users``). Both sides are SQLite
files. The two populations are measured interleaved (A B A B …); the script prints the medians
and their ratio, which should stay close to 1: cost follows changes, not users.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from gatehouse.domain import changes, environments
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import SecretBox
from gatehouse.store.db import Database
from gatehouse.store.migrate import upgrade
from gatehouse.store.models import Environment, User, utcnow
from gatehouse.sync import feed, replica

CHANGES = 10
ROUNDS = 15


class Setup:
    """A console and an environment replica, both holding ``n`` users."""

    def __init__(self, root: Path, n: int) -> None:
        self.box = SecretBox(b"bench-secret-key-" + b"x" * 32)
        self.console = Database(f"sqlite:///{root / f'console-{n}.db'}")
        self.env = Database(f"sqlite:///{root / f'env-{n}.db'}")
        for database in (self.console, self.env):
            upgrade(database.engine)
            self._fill(database, n)
        with self.console.session() as db:
            env, _ = environments.register(
                db,
                Actor.system("bench"),
                name="dev",
                base_url="https://dev.example.com",
                kind="dev",
                allow_insecure_http=False,
            )
            self.env_id = env.id
        with self.env.session() as db:
            replica.ensure_self(
                db, {"id": self.env_id, "name": "dev", "base_url": "x", "kind": "dev"}
            )
        self.ids = list(range(1, CHANGES + 1))
        self.round = 0

    @staticmethod
    def _fill(database: Database, n: int) -> None:
        now = utcnow()
        rows = [
            {
                "id": i,
                "username": f"user{i}",
                "username_key": f"user{i}",
                "email": f"user{i}@example.com",
                "email_key": f"user{i}@example.com",
                "display_name": f"User {i}",
                "status": "active",
                "local_admin": False,
                "must_change_password": False,
                "created_at": now,
                "updated_at": now,
                "revision": 0,
            }
            for i in range(1, n + 1)
        ]
        with database.session() as db:
            for start in range(0, len(rows), 20_000):
                db.execute(insert(User), rows[start : start + 20_000])

    def change(self) -> int:
        """Ten changed users on the console; returns the revision before them."""
        self.round += 1
        with self.console.session() as db:
            since = changes.latest_revision(db)
            for user in db.scalars(select(User).where(User.id.in_(self.ids))):
                user.display_name = f"changed {self.round}"
                changes.touch(db, "user", user.id)
        return since

    def sync_step(self, since: int) -> float:
        """Seconds for one page: build on the console, JSON both ways, apply on the replica."""
        started = time.perf_counter()
        with self.console.session() as db:
            env = db.get(Environment, self.env_id)
            assert env is not None
            page = feed.build(db, self.box, env, since=since, known_idp=feed.idp_fingerprint(db))
        assert page is not None and len(page.body["users"]) == CHANGES
        body: dict[str, Any] = json.loads(json.dumps(page.body))
        with self.env.session() as db:
            replica.apply_users(db, self.env_id, body["users"], body["deleted_users"])
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-sync-") as tmp:
        t0 = time.perf_counter()
        small, large = Setup(Path(tmp), 10), Setup(Path(tmp), args.users)
        print(f"setup: 2 x (console + replica) in {time.perf_counter() - t0:.1f} s")
        for setup in (small, large):  # warm-up
            setup.sync_step(setup.change())
        timings: dict[int, list[float]] = {10: [], args.users: []}
        for _ in range(ROUNDS):
            for setup, n in ((small, 10), (large, args.users)):
                timings[n].append(setup.sync_step(setup.change()))
    a, b = statistics.median(timings[10]), statistics.median(timings[args.users])
    for n, value in ((10, a), (args.users, b)):
        print(f"{n:>7} users, {CHANGES} changes: {value * 1000:7.2f} ms per sync (median)")
    print(f"ratio {args.users} / 10 users: {b / a:.2f} (close to 1: cost follows changes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
