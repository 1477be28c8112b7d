"""Integration fixtures: a live Gatehouse server (the IdP must reach it for back-channel
logout)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gatehouse.runtime import Runtime
from gatehouse.settings import Settings
from gatehouse.web.app import create_app
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
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        public_url=url,
        secret_key="live-server-secret-key-" + "x" * 32,
        allow_insecure_http=True,
    )
    rt = Runtime(settings)
    rt.start()
    rt.users.ttl = 0.0
    app = create_app(runtime=rt)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live Gatehouse server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(url=url, runtime=rt, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        rt.close()
