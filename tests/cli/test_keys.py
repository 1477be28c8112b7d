"""`gatehouse keys rotate` / `status` / `rotate --finish` as separate processes, against a
server that keeps running (the rotation itself: unit/domain/test_keyrotation.py)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatehouse.runtime import Runtime
from keyrotation_helpers import EXPECTED, key_file_runtime, read_all, seed


@pytest.fixture
def file_runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    """A running server whose key lives in DATA_DIR/secret.key (no GATEHOUSE_SECRET_KEY)."""
    with key_file_runtime(tmp_path, database_url) as rt:
        yield rt


def test_cli_keys_rotate_then_finish(file_runtime: Runtime, tmp_path: Path) -> None:
    seed(file_runtime, sessions=2)
    env = {
        **os.environ,
        "GATEHOUSE_DATA_DIR": str(file_runtime.settings.data_dir),
        "GATEHOUSE_DATABASE_URL": file_runtime.settings.resolved_database_url,
    }
    env.pop("GATEHOUSE_SECRET_KEY", None)
    cli = [sys.executable, "-m", "gatehouse.cli", "keys"]
    rotate = subprocess.run(
        [*cli, "rotate", "--batch-size", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert rotate.returncode == 0, rotate.stdout + rotate.stderr
    assert "New key active" in rotate.stdout and "New signing key" in rotate.stdout
    status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert "Rotation in progress" in status.stdout
    finish = subprocess.run(
        [*cli, "rotate", "--finish"], env=env, capture_output=True, text=True, timeout=60
    )
    assert finish.returncode == 0, finish.stdout + finish.stderr
    assert "Dropped 1 old key" in finish.stdout
    assert read_all(file_runtime, file_runtime.box) == EXPECTED
    again = subprocess.run(
        [*cli, "rotate", "--new-key-stdin"],
        env=env,
        input="short\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "at least 32" in again.stdout + again.stderr


@pytest.fixture
def sqlite_file_runtime(tmp_path: Path, sqlite_url: str) -> Iterator[Runtime]:
    """:func:`file_runtime` on SQLite only: the subject is the terminal output."""
    with key_file_runtime(tmp_path, sqlite_url) as rt:
        yield rt


def test_cli_keys_rotate_shows_progress_on_a_terminal_and_json_otherwise(
    sqlite_file_runtime: Runtime,
) -> None:
    file_runtime = sqlite_file_runtime
    seed(file_runtime, sessions=3)
    env = {
        **os.environ,
        "GATEHOUSE_DATA_DIR": str(file_runtime.settings.data_dir),
        "GATEHOUSE_DATABASE_URL": file_runtime.settings.resolved_database_url,
        "COLUMNS": "100",
        "TERM": "xterm",
    }
    env.pop("GATEHOUSE_SECRET_KEY", None)
    command = shlex.join([sys.executable, "-m", "gatehouse.cli", "keys", "rotate"])
    shown = subprocess.run(
        ["script", "-qec", f"{command} --batch-size 1", "/dev/null"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stdout
    assert "Re-encrypting" in shown.stdout and "values" in shown.stdout
    assert "New key active" in shown.stdout
    again = subprocess.run(
        [sys.executable, "-m", "gatehouse.cli", "keys", "rotate", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["started"] is False  # resumed
    assert all(c["old_key"] == 0 for c in report["columns"].values())
    assert "\x1b[" not in again.stderr and "Re-encrypting" not in again.stderr
