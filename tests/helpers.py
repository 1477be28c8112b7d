"""Small helpers shared by test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from gatehouse.settings import Settings

PUBLIC_URL = "http://127.0.0.1:8000"
ADMIN_PASSWORD = "break-glass-password-1"


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a console page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def console_login(client: TestClient, username: str = "root",
                  password: str = ADMIN_PASSWORD, return_to: str = "/") -> Any:
    """Sign in through the console's local form; returns the (unfollowed) response."""
    page = client.get("/login")
    return client.post("/login/local", data={
        "username": username, "password": password, "csrf_token": csrf_from(page.text),
        "return_to": return_to,
    }, follow_redirects=False)


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "public_url": PUBLIC_URL,
        "secret_key": "test-secret-key-" + "x" * 32,
        "allow_insecure_http": True,
    }
    values.update(overrides)
    return Settings(**values)
