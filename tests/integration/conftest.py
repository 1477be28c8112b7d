"""Integration fixtures: a live Gatehouse server (the IdP must reach it for back-channel
logout)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gatehouse.runtime import Runtime
from gatehouse.web.app import create_app
from helpers import make_settings, serving
from idp.fixture import free_port

# -- a live server (back-channel logout needs the IdP to reach Gatehouse over HTTP) ----------


@dataclass
class LiveServer:
    url: str
    runtime: Runtime
    app: Any


@pytest.fixture
def live_server(tmp_path: Path, sqlite_url: str) -> Iterator[LiveServer]:
    """Gatehouse served by uvicorn in a thread on a free loopback port (its own runtime, with
    ``GATEHOUSE_PUBLIC_URL`` = its URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rt = Runtime(make_settings(tmp_path, sqlite_url, public_url=url))
    rt.start()
    rt.users.ttl = 0.0
    app = create_app(runtime=rt)
    try:
        with serving(app, port, log_level="warning", lifespan="on"):
            yield LiveServer(url=url, runtime=rt, app=app)
    finally:
        rt.close()
