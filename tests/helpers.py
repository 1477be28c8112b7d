"""Small helpers shared by test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gatehouse.settings import Settings

PUBLIC_URL = "http://127.0.0.1:8000"
ADMIN_PASSWORD = "break-glass-password-1"


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a console page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def console_login(
    client: TestClient, username: str = "root", password: str = ADMIN_PASSWORD, return_to: str = "/"
) -> Any:
    """Sign in through the console's local form; returns the (unfollowed) response."""
    page = client.get("/login")
    return client.post(
        "/login/local",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_from(page.text),
            "return_to": return_to,
        },
        follow_redirects=False,
    )


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


@contextmanager
def serving(app: Any, port: int, *, timeout: float = 15.0, **config: Any) -> Iterator[None]:
    """Serve ``app`` with uvicorn in a thread on 127.0.0.1:``port`` (``config`` as
    ``uvicorn.Config`` takes it) until the block ends: a live server that the IdP, nginx or a
    subprocess can reach over HTTP."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
            time.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- PostgreSQL and Redis for the tests that need the real servers -----------------------------
POSTGRES_URL = os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("GATEHOUSE_TEST_REDIS_URL", "")


def require_service(problem: str | None, what: str) -> None:
    """Fail in CI (``CI`` set: these tests must run there), skip with the reason elsewhere."""
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{what} tests must run in CI: {problem}", pytrace=False)
        pytest.skip(problem)


def postgres_problem() -> str | None:
    """Why PostgreSQL at ``GATEHOUSE_TEST_POSTGRES_URL`` cannot be used, or None."""
    if not POSTGRES_URL:
        return "GATEHOUSE_TEST_POSTGRES_URL is not set"
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at GATEHOUSE_TEST_POSTGRES_URL is not reachable: {exc}"
    return None


def redis_problem() -> str | None:
    """Why Redis at ``GATEHOUSE_TEST_REDIS_URL`` cannot be used, or None."""
    if not REDIS_URL:
        return "GATEHOUSE_TEST_REDIS_URL is not set"
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis at GATEHOUSE_TEST_REDIS_URL is not reachable: {exc}"
    return None


@contextmanager
def scratch_postgres(
    prefix: str = "gatehouse_test", server_url: str | None = None
) -> Iterator[str]:
    """An empty PostgreSQL database of its own (unique name) on ``server_url`` (default:
    ``GATEHOUSE_TEST_POSTGRES_URL``), dropped afterwards. The benchmarks use it too."""
    admin_url = make_url(server_url or POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
