"""Fixtures for the tools' sign-in: a live Gatehouse configured (through its API) against a
dedicated test IdP, pre-created users, and a way to run the real `gatehouse` command."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatehouse.domain import users
from gatehouse.domain.audit import Actor
from helpers import ADMIN_PASSWORD
from idp.fixture import IDP_DIR, OpenIDProvider
from idp.plugin import running_idp
from idp_helpers import configure_idp

GATEHOUSE = str(Path(sys.executable).parent / "gatehouse")


@pytest.fixture(scope="module")
def tools_idp() -> Iterator[OpenIDProvider]:
    """An IdP of our own: tests here disable users and spend refresh tokens."""
    with running_idp(log_requests=True) as provider:
        yield provider


@pytest.fixture
def server(live_server: Any, tools_idp: OpenIDProvider) -> Any:
    """A live Gatehouse with OIDC active (configured, tested and activated through the API),
    local admin ``root``, and pre-created users alice and carol."""
    rt = live_server.runtime
    with rt.db.session() as db:
        actor = Actor.system("test")
        users.create_user(db, actor, username="root", password=ADMIN_PASSWORD, local_admin=True)
        users.create_user(db, actor, username="alice", email="alice@example.com")
        users.create_user(db, actor, username="carol")
    with httpx.Client(base_url=live_server.url, trust_env=False) as api:
        token = api.post(
            "/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        configure_idp(api, {"Authorization": f"Bearer {token}"}, tools_idp)
    return live_server


@dataclass
class CLI:
    """Runs `gatehouse` as a separate process, as a user would, with its own config dir."""

    env: dict[str, str]
    config_dir: Path

    def run(
        self, *args: str, timeout: float = 60, input: str | None = None, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GATEHOUSE, *args],
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input if input is not None else "",
        )

    def start(self, *args: str, **extra_env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [GATEHOUSE, *args],
            env={**self.env, **extra_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    """`gatehouse` with a private config dir, the file token store, and the scripted browser
    (``tests/idp/browser.py``) as ``$BROWSER`` signing in as alice."""
    browser = tmp_path / "browser"
    browser.write_text(
        f'#!/bin/sh\nexec {sys.executable} {IDP_DIR / "browser.py"} "$@"\n', encoding="utf-8"
    )
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    config_dir = tmp_path / "config"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "SSH_TTY", "GATEHOUSE_SERVER")
    }
    env.update(
        {
            "GATEHOUSE_CONFIG_DIR": str(config_dir),
            "GATEHOUSE_TOKEN_STORE": "file",
            "BROWSER": str(browser),
            "TEST_IDP_USERNAME": "alice",
            "TEST_IDP_PASSWORD": "alice-password",
            "TEST_IDP_BROWSER_LOG": str(tmp_path / "browser.log"),
            "COLUMNS": "200",
        }
    )
    return CLI(env=env, config_dir=config_dir)
