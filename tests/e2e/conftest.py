"""End-to-end fixtures: Debian's Chromium through Playwright, one live Gatehouse, one real IdP.

* ``browser`` (session) -- Chromium launched once (``/usr/bin/chromium``; Playwright's own
  browser download does not work here). Missing Chromium FAILS the test, it never skips.
* ``page`` -- a fresh browser context (cookies, storage) and page per test, 1280x800, light.
  ``new_page(viewport=..., color_scheme=...)`` opens more pages in fresh contexts.
* ``e2e_server`` (session) -- one uvicorn server on a free loopback port; every test gets its own
  Gatehouse app (fresh SQLite database) behind it through :class:`Switchboard`, so the port --
  and the IdP's registered redirect URI -- stay the same for the whole session.
* ``e2e_idp`` (session) -- one real ``oidc-provider`` whose web client redirects to that server.
* ``console`` -- this test's Gatehouse: its URL, its runtime, and helpers to seed it.

On a failed test the page's screenshot and HTML are kept under
``test-artifacts/e2e/<test name>/`` (see ``pytest_runtest_makereport``).

``make test`` runs ``--dist loadfile``: each module stays on one worker, and a worker starts the
session fixtures once. (The tests also carry the xdist group ``e2e``, which keeps them on one
worker under ``--dist loadgroup``.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import CHROMIUM, CHROMIUM_ARGS, Console, Pages, keep_artifacts
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from gatehouse.runtime import Runtime
from gatehouse.web.app import create_app
from helpers import make_settings, serving
from idp.fixture import OpenIDProvider, free_port
from idp.plugin import running_idp


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("e2e"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so that ``page`` can tell a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(item: pytest.Item) -> bool:
    return any(
        getattr(getattr(item, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


# -- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, launched once for the session."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: `apt-get install chromium` "
            "(.ci/run does it). The end-to-end tests need a real browser and never skip.",
            pytrace=False,
        )
    instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Page]]:
    """``new_page(viewport=PHONE, color_scheme="dark")``: a page in a fresh context."""
    pages = Pages(browser)
    try:
        yield pages.new
    finally:
        if _failed(request.node):
            keep_artifacts(request.node.name, pages.opened)
        for context in pages.contexts:
            context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A page in a fresh browser context, laptop-sized, light colour scheme."""
    return new_page()


# -- one live server, one app per test ------------------------------------------------------


class Switchboard:
    """An ASGI app that forwards every request to the current test's Gatehouse app."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if self.target is None:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"no Gatehouse app is mounted"})
            return
        await self.target(scope, receive, send)


@dataclass
class E2EServer:
    url: str
    switchboard: Switchboard


@pytest.fixture(scope="session")
def e2e_server() -> Iterator[E2EServer]:
    port = free_port()
    switchboard = Switchboard()
    with serving(switchboard, port, log_level="warning"):
        yield E2EServer(url=f"http://127.0.0.1:{port}", switchboard=switchboard)


@pytest.fixture(scope="session")
def e2e_idp(e2e_server: E2EServer) -> Iterator[OpenIDProvider]:
    """The real test IdP, with gatehouse-web redirecting to the end-to-end server."""
    with running_idp(web_redirect_uris=[f"{e2e_server.url}/auth/oidc/callback"]) as provider:
        yield provider


@pytest.fixture
def console(
    e2e_server: E2EServer, e2e_idp: OpenIDProvider, tmp_path: Path, sqlite_url: str
) -> Iterator[Console]:
    runtime = Runtime(make_settings(tmp_path, sqlite_url, public_url=e2e_server.url))
    runtime.start()
    runtime.users.ttl = 0.0
    e2e_server.switchboard.target = create_app(runtime=runtime)
    try:
        yield Console(url=e2e_server.url, runtime=runtime, idp=e2e_idp)
    finally:
        e2e_server.switchboard.target = None
        runtime.close()
