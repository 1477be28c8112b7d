"""Engine and session factory.

SQLite gets WAL, foreign keys and a busy timeout so that a few concurrent writers (the server and
a CLI command) wait instead of failing. PostgreSQL connections are pinged when they come out of
the pool after sitting idle, so that a restarted server is picked up again without restarting
Gatehouse; a connection handed back a moment ago is not pinged (on a busy server that saved a
round trip on every transaction), and a disconnect it meets still invalidates the whole pool.

:meth:`Database.relaxed` serves single statements on rows whose loss in a database crash costs a
retry, never security (rate-limit counts, sign-ins in flight): on PostgreSQL they run in
autocommit on connections with ``synchronous_commit=off`` — one round trip instead of BEGIN, SET,
the statement and COMMIT, and no wait for the WAL flush.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

#: a pooled connection idle for longer than this is pinged before use
PING_AFTER_IDLE_SECONDS = 1.0


def _create_private(path: Path) -> None:
    """A new database file (and a new data directory) readable by its owner only: it holds
    password hashes and sessions. SQLite gives its -wal and -shm files the same mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # an existing one keeps its operator's mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            _create_private(Path(path))
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
    return _server_engine(url, pool_size=10, max_overflow=10)


def _server_engine(url: str, *, relaxed: bool = False, **pool: int) -> Engine:
    # No server-side prepared statements: psycopg prepares a query after five runs, and
    # PostgreSQL may then pick a generic plan that cannot use an index for ``LIKE $1`` (user
    # search went from 5 to 140 ms, bench/users_scale.py). It also keeps Gatehouse usable
    # behind PgBouncer in transaction mode.
    connect_args: dict[str, Any] = (
        {"prepare_threshold": None} if url.startswith("postgresql+psycopg") else {}
    )
    extra: dict[str, Any] = {}
    if relaxed:
        connect_args["options"] = "-c synchronous_commit=off"
        extra["isolation_level"] = "AUTOCOMMIT"
    engine = create_engine(
        url,
        pool_recycle=1800,
        connect_args=connect_args,
        hide_parameters=True,
        **pool,
        **extra,
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Pre-ping only connections that sat idle (SQLAlchemy's ``pool_pre_ping`` pings always)."""

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("the pooled connection is gone") from exc
        if not alive:
            raise DisconnectionError("the pooled connection is gone")


class Database:
    """Owns the engine and hands out sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._relaxed_engine: Engine | None = None
        self._relaxed_lock = threading.Lock()

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

    @contextmanager
    def relaxed(self) -> Iterator[Connection]:
        """A connection for single statements that may be lost in a crash (see the module).

        Each statement commits on its own (PostgreSQL: autocommit, no wait for the WAL flush;
        SQLite: one transaction committed on leaving the block).
        """
        if self.is_sqlite:
            with self.engine.begin() as conn:
                yield conn
            return
        engine = self._relaxed_engine
        if engine is None:
            with self._relaxed_lock:
                if self._relaxed_engine is None:
                    self._relaxed_engine = _server_engine(
                        self.url, relaxed=True, pool_size=5, max_overflow=10
                    )
                engine = self._relaxed_engine
        with engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
        if self._relaxed_engine is not None:
            self._relaxed_engine.dispose()
