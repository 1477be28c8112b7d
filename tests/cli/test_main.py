"""`gatehouse serve` on an empty data dir, and `gatehouse admin bootstrap`, as real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

GATEHOUSE = [sys.executable, "-m", "gatehouse.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update({"GATEHOUSE_DATA_DIR": str(data_dir), **extra})
    return env


def test_serve_on_empty_data_dir_migrates_creates_admin_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    data = tmp_path / "fresh"
    proc = subprocess.Popen(
        [*GATEHOUSE, "serve", "--port", str(port)],
        env=_env(data, GATEHOUSE_PUBLIC_URL=f"http://127.0.0.1:{port}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "gatehouse serve did not answer /healthz"
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
        password_file = data / "initial-admin-password"
        assert password_file.exists()
        assert password_file.stat().st_mode & 0o777 == 0o600
        assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
        assert data.stat().st_mode & 0o777 == 0o700  # the data dir and the database: owner only
        for name in ("gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"):
            assert (data / name).stat().st_mode & 0o777 == 0o600, name
        password = password_file.read_text().strip()
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/local",
            json={"username": "admin", "password": password},
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert password in out  # printed once on first run
    assert out.count(password) == 1


@pytest.mark.parametrize(
    ("missing", "setting", "extra"),
    [
        ("redis", {"GATEHOUSE_REDIS_URL": "redis://127.0.0.1:1/0"}, "gatehouse-sso[redis]"),
        (
            "psycopg",
            {"GATEHOUSE_DATABASE_URL": "postgresql+psycopg://gh:hunter2@127.0.0.1:1/db"},
            "gatehouse-sso[postgres]",
        ),
    ],
)
def test_serve_names_the_extra_when_a_setting_needs_a_package_not_installed(
    tmp_path: Path, missing: str, setting: dict[str, str], extra: str
) -> None:
    # the package is shadowed by one that cannot be imported, as when the extra is not installed
    shadow = tmp_path / "shadow" / missing
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{missing}'\", name={missing!r})\n"
    )
    env = _env(tmp_path / "data", **setting, PYTHONPATH=str(shadow.parent))
    result = subprocess.run(
        [*GATEHOUSE, "serve", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert extra in output and "Traceback" not in output and "hunter2" not in output


def test_admin_bootstrap_on_empty_data_dir_and_refusal_when_admin_exists(tmp_path: Path) -> None:
    data = tmp_path / "d"
    ok = subprocess.run(
        [*GATEHOUSE, "admin", "bootstrap", "--username", "ops", "--password-stdin"],
        input="ops-password-12345\n",
        env=_env(data),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ops-password-12345" not in ok.stdout + ok.stderr
    again = subprocess.run(
        [*GATEHOUSE, "admin", "bootstrap", "--username", "ops2", "--password-stdin"],
        input="ops-password-12345\n",
        env=_env(data),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 3
    assert "already exists" in again.stderr


def test_admin_bootstrap_refuses_weak_password(tmp_path: Path) -> None:
    r = subprocess.run(
        [*GATEHOUSE, "admin", "bootstrap", "--username", "ops", "--password-stdin"],
        input="short\n",
        env=_env(tmp_path / "d"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "at least 12 characters" in r.stderr


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        r = subprocess.run(
            [*GATEHOUSE, "db", "upgrade"],
            env=_env(tmp_path / "d"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert "0001" in r.stdout or "revision" in r.stdout


def test_help_explains_every_command() -> None:
    r = subprocess.run([*GATEHOUSE, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for command in ("serve", "db", "admin"):
        assert command in r.stdout


def test_serve_logs_httpx_requests_only_at_debug() -> None:
    """An environment polls the console every few seconds: httpx's per-request INFO line
    stays out of the log unless GATEHOUSE_LOG_LEVEL=DEBUG."""
    import logging

    from gatehouse.cli.main import configure_logging

    try:
        configure_logging("INFO")
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
        configure_logging("DEBUG")
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    finally:
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        logging.getLogger("httpcore").setLevel(logging.NOTSET)
