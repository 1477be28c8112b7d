"""Small helpers shared by test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from conftest import ADMIN_PASSWORD


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
