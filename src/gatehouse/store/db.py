"""Engine and session factory.

SQLite gets WAL, foreign keys and a busy timeout so that a few concurrent writers (the server and
a CLI command) wait instead of failing. PostgreSQL gets a pre-ping so that a restarted server is
picked up again without restarting Gatehouse.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,  # SQL logged at DEBUG never shows values (hashes, e-mails)
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling would defer BEGIN; take control of it.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # BEGIN IMMEDIATE takes the write lock up front: no deadlock between two upgraders.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No server-side prepared statements: psycopg prepares a query after five runs, and
    # PostgreSQL may then pick a generic plan that cannot use an index for ``LIKE $1`` (user
    # search went from 5 to 140 ms, bench/users_scale.py). It also keeps Gatehouse usable
    # behind PgBouncer in transaction mode.
    connect_args = {"prepare_threshold": None} if url.startswith("postgresql+psycopg") else {}
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        connect_args=connect_args,
        hide_parameters=True,
    )


def skip_commit_flush(db: Session) -> None:
    """Let this transaction commit without waiting for its WAL record to reach the disk.

    Only for rows whose loss in a database crash costs a retry, never security: rate-limit
    counts and sign-ins in progress. A PostgreSQL commit otherwise waits for an fsync — on our
    VMs 2-3 ms, several times the rest of such a hop (bench/web_sign_in.py). The transaction is
    still atomic and isolated; other sessions see it at once. No effect on SQLite.
    """
    bind = db.get_bind()
    if bind.dialect.name == "postgresql":
        db.execute(text("SET LOCAL synchronous_commit TO OFF"))


class Database:
    """Owns the engine and hands out sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
