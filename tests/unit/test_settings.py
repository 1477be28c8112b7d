"""Settings come from the environment only; an empty variable counts as unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.settings import Settings


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # What Compose's ${GATEHOUSE_JOIN_TOKEN:-} or a blank ConfigMap value gives a container.
    for name in ("JOIN_TOKEN", "CONSOLE_URL", "REDIS_URL", "DATABASE_URL", "PUBLIC_URL", "PORT"):
        monkeypatch.setenv(f"GATEHOUSE_{name}", "")
    settings = Settings()
    assert settings.join_token is None
    assert settings.console_url is None
    assert settings.redis_url is None
    assert settings.database_url is None
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.port == 8000


def test_role_and_data_dir_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEHOUSE_ROLE", "environment")
    monkeypatch.setenv("GATEHOUSE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.role == "environment"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'gatehouse.db'}"
