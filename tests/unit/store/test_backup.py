"""store.backup, behind `gatehouse db backup` / `restore`, on SQLite: consistent copy, refusal of
non-Gatehouse files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gatehouse.domain import users
from gatehouse.domain.audit import Actor
from gatehouse.runtime import Runtime
from gatehouse.store.backup import BackupError, backup, restore
from gatehouse.store.models import User
from helpers import make_settings


def test_backup_while_running_and_restore_brings_back_the_data(
    tmp_path: Path, sqlite_url: str
) -> None:
    rt = Runtime(make_settings(tmp_path, sqlite_url))
    rt.start()
    with rt.db.session() as db:
        users.create_user(db, Actor.system("t"), username="keepme")
    target = tmp_path / "backups" / "gh.db"
    # A write is in flight in another connection while we back up.
    with rt.db.session() as db:
        users.create_user(db, Actor.system("t"), username="also")
        assert backup(sqlite_url, target) > 0
    assert target.stat().st_mode & 0o777 == 0o600
    with rt.db.session() as db:
        users.create_user(db, Actor.system("t"), username="after-backup")
    rt.close()
    kept = restore(sqlite_url, target)
    assert kept.exists()
    rt = Runtime(make_settings(tmp_path, sqlite_url))
    with rt.db.session() as db:
        names = {u.username for u in db.query(User)}
    rt.close()
    assert "keepme" in names and "after-backup" not in names


def test_backup_refuses_to_overwrite(tmp_path: Path, sqlite_url: str) -> None:
    target = tmp_path / "x.db"
    target.write_text("precious")
    with pytest.raises(BackupError, match="exists already"):
        backup(sqlite_url, target)
    assert target.read_text() == "precious"


def test_restore_refuses_a_file_that_is_not_a_gatehouse_database(
    tmp_path: Path, sqlite_url: str
) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    before = Path(sqlite_url.removeprefix("sqlite:///")).read_bytes()
    with pytest.raises(BackupError, match="not a Gatehouse database"):
        restore(sqlite_url, other)
    assert Path(sqlite_url.removeprefix("sqlite:///")).read_bytes() == before


def test_postgres_url_points_to_pg_dump() -> None:
    with pytest.raises(BackupError, match="pg_dump"):
        backup("postgresql+psycopg://x@h/db", Path("/tmp/never"))


def test_a_backup_is_one_file_and_leaves_no_wal_files_behind(
    tmp_path: Path, sqlite_url: str
) -> None:
    rt = Runtime(make_settings(tmp_path, sqlite_url))
    rt.start()
    rt.close()  # the server stopped: its WAL files are gone
    source = Path(sqlite_url.removeprefix("sqlite:///"))
    steps: list[tuple[int, int]] = []
    target = tmp_path / "out" / "gh.db"
    backup(sqlite_url, target, progress=lambda done, total: steps.append((done, total)))
    beside = sorted(p.name for p in target.parent.iterdir())
    assert beside == ["gh.db"]
    assert not Path(f"{source}-wal").exists() and not Path(f"{source}-shm").exists()
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert steps and steps[-1][0] == steps[-1][1] > 0  # progress reached the end
    restore(sqlite_url, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["gh.db"]
