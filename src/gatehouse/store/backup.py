"""Consistent backups of the embedded SQLite database, and restores.

A backup uses SQLite's online backup API, so it is consistent while the server keeps writing
(WAL mode). A restore checks that the file is a Gatehouse database at a known migration, keeps
the current database beside it (``.before-restore``), and replaces it atomically; restart the
server afterwards. PostgreSQL deployments use ``pg_dump``/``pg_restore`` (see docs/operations.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from alembic.script import ScriptDirectory

from gatehouse.store.migrate import MIGRATIONS


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why."""


def sqlite_path(database_url: str) -> Path:
    if not database_url.startswith("sqlite:///"):
        raise BackupError(
            "gatehouse db backup/restore handle the embedded SQLite database; for PostgreSQL "
            "use pg_dump and pg_restore (see docs/operations.md)."
        )
    return Path(database_url.removeprefix("sqlite:///"))


#: pages copied per step of the online backup (4 KiB pages: 1 MiB per step)
BACKUP_STEP_PAGES = 256

#: ``progress(pages_done, pages_total)``, called after each step of a backup or restore
Progress = Callable[[int, int], None]


def backup(database_url: str, target: Path, progress: Progress | None = None) -> int:
    """Copy the live database to ``target`` (mode 0600); returns its size in bytes.

    The copy is one self-contained file: it is switched from WAL to the rollback journal, so
    no ``-wal``/``-shm`` files appear beside it (restoring puts WAL back on first start). The
    source is opened read-write, as every Gatehouse process opens it, so the last connection
    to close removes the WAL files a read-only one would leave behind.
    """
    source = sqlite_path(database_url)
    if not source.exists():
        raise BackupError(f"There is no database at {source}.")
    if target.exists():
        raise BackupError(f"{target} exists already; choose a new file name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)

    def step(_status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(total - remaining, total)

    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=BACKUP_STEP_PAGES, progress=step)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    _check(target)
    return target.stat().st_size


def _check(path: Path) -> str:
    known = {s.revision for s in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    try:
        # immutable: no locks and no -wal/-shm files beside a backup that is only read
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
            conn.execute("SELECT count(*) FROM users").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a Gatehouse database ({exc}).") from exc
    if ok != "ok":
        raise BackupError(f"{path} failed SQLite's integrity check: {ok}")
    if revision not in known:
        raise BackupError(f"{path} is at migration {revision}, which this Gatehouse does not know.")
    return str(revision)


def restore(database_url: str, source: Path, progress: Progress | None = None) -> Path:
    """Replace the database with ``source``; returns where the previous one was kept.
    ``progress`` follows the copy of the current database aside (the long part)."""
    target = sqlite_path(database_url)
    if not source.exists():
        raise BackupError(f"There is no backup at {source}.")
    _check(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    kept = target.with_name(target.name + ".before-restore")
    staging = target.with_name(target.name + ".restoring")
    shutil.copyfile(source, staging)
    os.chmod(staging, 0o600)
    if target.exists():
        backup_of_current = kept
        if backup_of_current.exists():
            backup_of_current.unlink()
        backup(database_url, backup_of_current, progress)
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    os.replace(staging, target)
    return kept
