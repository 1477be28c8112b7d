"""`gatehouse db backup` / `restore` as real processes: a progress bar on a terminal only,
JSON with `--json`, and a backup that is one file."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

GATEHOUSE = [sys.executable, "-m", "gatehouse.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    values["GATEHOUSE_DATA_DIR"] = str(tmp_path / "data")
    upgrade = subprocess.run(
        [*GATEHOUSE, "db", "upgrade"], env=values, capture_output=True, text=True, timeout=60
    )
    assert upgrade.returncode == 0, upgrade.stderr
    return values


def on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run ``gatehouse args`` in a pseudo-terminal (util-linux ``script``); what it showed."""
    command = shlex.join([*GATEHOUSE, *args])
    shown = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        env={**env, "COLUMNS": "100", "TERM": "xterm"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return shown.stdout


def test_backup_shows_progress_on_a_terminal_only(env: dict[str, str], tmp_path: Path) -> None:
    shown = on_a_terminal(["db", "backup", str(tmp_path / "tty.db")], env)
    assert "Backing up" in shown and "100%" in shown and "pages" in shown
    assert "Backed up to" in shown

    piped = subprocess.run(
        [*GATEHOUSE, "db", "backup", str(tmp_path / "piped.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stdout + piped.stderr and "Backing up" not in piped.stderr
    assert piped.stdout.startswith("Backed up to")


def test_backup_and_restore_with_json_print_only_json(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "out" / "gh.db"
    backup = subprocess.run(
        [*GATEHOUSE, "db", "backup", str(target), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert backup.returncode == 0, backup.stderr
    body = json.loads(backup.stdout)
    assert body["file"] == str(target) and body["bytes"] == target.stat().st_size
    assert sorted(p.name for p in target.parent.iterdir()) == ["gh.db"]  # no -wal / -shm
    restore = subprocess.run(
        [*GATEHOUSE, "db", "restore", str(target), "--yes", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert restore.returncode == 0, restore.stderr
    assert json.loads(restore.stdout)["restored_from"] == str(target)
    assert restore.stderr == ""
