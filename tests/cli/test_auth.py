"""`gatehouse auth …` without a server: exit codes scripts rely on, and what is never printed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gatehouse.cli.main import app
from gatehouse.client import StoredSession, TokenCache

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEHOUSE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("GATEHOUSE_TOKEN_STORE", "file")
    monkeypatch.delenv("GATEHOUSE_SERVER", raising=False)
    return tmp_path


def store(config: Path, server: str, **extra: object) -> None:
    values: dict[str, object] = {
        "server": server,
        "method": "local",
        "access_token": "secret.token.value",
        "access_expires_at": time.time() + 600,
        "username": "root",
    }
    values.update(extra)
    TokenCache(config, store="file", notify=lambda _m: None).save(StoredSession(**values))  # type: ignore[arg-type]


def test_status_without_sessions_exits_4(config: Path) -> None:
    result = runner.invoke(app, ["auth", "status"])
    assert result.exit_code == 4
    assert "gatehouse login" in result.output


def test_token_with_several_servers_and_none_named_is_a_usage_error(config: Path) -> None:
    store(config, "https://a.example")
    store(config, "https://b.example")
    result = runner.invoke(app, ["auth", "token"])
    assert result.exit_code == 2
    assert "secret.token.value" not in result.output


def test_token_prints_the_bare_token_of_the_only_server(config: Path) -> None:
    store(config, "https://a.example")
    result = runner.invoke(app, ["auth", "token"])
    assert result.exit_code == 0
    assert result.stdout == "secret.token.value\n"


def test_status_shows_server_user_and_expiry_but_never_the_token(config: Path) -> None:
    store(config, "https://a.example")
    result = runner.invoke(app, ["auth", "status"])
    assert result.exit_code == 0
    assert "https://a.example" in result.output and "root" in result.output
    assert "secret.token.value" not in result.output


def test_expired_password_session_ends_with_the_login_hint(config: Path) -> None:
    store(config, "https://a.example", access_expires_at=time.time() - 5)
    result = runner.invoke(app, ["auth", "token", "https://a.example"])
    assert result.exit_code == 4
    assert "Your session for https://a.example has ended" in " ".join(result.output.split())
    assert "--local" in result.output


def test_local_login_never_takes_a_password_argument(config: Path) -> None:
    result = runner.invoke(app, ["login", "https://a.example", "--local", "--password", "x"])
    assert result.exit_code == 2


def test_every_command_explains_itself(config: Path) -> None:
    for args in (["login"], ["auth", "status"], ["auth", "token"], ["auth", "logout"], ["whoami"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0
        assert "Exit codes" in result.output


def test_status_is_one_readable_block_per_server(config: Path) -> None:
    store(config, "https://a.example", access_expires_at=time.time() + 600)
    store(config, "https://b.example", access_expires_at=time.time() - 200, username="o'brien")
    result = runner.invoke(app, ["auth", "status"], env={"COLUMNS": "60"})
    assert result.exit_code == 0
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    a = lines.index("https://a.example")
    assert lines[a + 1].split() == ["user", "root"]
    assert lines[a + 2].split()[:3] == ["signed", "in", "with"] and "password" in lines[a + 2]
    assert lines[a + 3].strip().startswith("token expires") and "(in 9 min)" in lines[a + 3]
    b = lines.index("https://b.example")
    assert lines[b + 1].split() == ["user", "o'brien"]
    assert "expired 3 min ago" in lines[b + 3]


def test_help_never_shows_a_type_beside_a_flag(config: Path) -> None:
    commands = (
        [],
        ["login"],
        ["auth", "status"],
        ["auth", "logout"],
        ["db", "backup"],
        ["db", "restore"],
        ["keys", "rotate"],
        ["admin", "bootstrap"],
        ["serve"],
    )
    for args in commands:
        result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, args
        assert "<bool>" not in result.output, args
        assert "--help" in result.output
