"""Shared pieces of the end-to-end suite (import as ``from e2e_helpers import ...``): the
per-test :class:`Console`, browser steps, screenshots and failure artefacts."""

from __future__ import annotations

import os
import re
import shutil
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, Page

from gatehouse.domain import users
from gatehouse.domain.audit import Actor
from gatehouse.runtime import Runtime
from helpers import ADMIN_PASSWORD
from idp.fixture import OpenIDProvider
from idp_helpers import configure_idp

CHROMIUM = os.environ.get("GATEHOUSE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
SCREENSHOTS = ROOT / "docs" / "screenshots"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
IDP_NAME = "Acme SSO"
FIXED_TIME = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def keep_artifacts(name: str, pages: list[Page]) -> Path:
    """Save a full-page screenshot and the HTML of every page under test-artifacts/e2e/<name>/."""
    target = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    for number, page in enumerate(pages):
        if page.is_closed():
            continue
        suffix = "" if number == 0 else f"-{number}"
        try:
            page.screenshot(path=str(target / f"page{suffix}.png"), full_page=True)
            (target / f"page{suffix}.html").write_text(page.content())
            (target / f"page{suffix}.url").write_text(page.url + "\n")
        except Exception as exc:  # a crashed page still gets a note instead of a lost report
            (target / f"page{suffix}.error").write_text(f"{exc!r}\n")
    return target


@dataclass
class Pages:
    """Every page a test opened (for the failure artefacts)."""

    browser: Browser
    opened: list[Page] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    def new(self, viewport: dict[str, int] | None = None, color_scheme: str = "light") -> Page:
        context = self.browser.new_context(
            viewport=viewport or LAPTOP,  # type: ignore[arg-type]
            color_scheme=color_scheme,  # type: ignore[arg-type]
            locale="en-GB",
            timezone_id="UTC",
        )
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        self.opened.append(page)
        return page


@dataclass
class Console:
    """This test's Gatehouse behind the shared server."""

    url: str
    runtime: Runtime
    idp: OpenIDProvider

    def at(self, path: str) -> str:
        return self.url + path

    def create_user(self, username: str, **kwargs: Any) -> int:
        with self.runtime.db.session() as db:
            return users.create_user(db, Actor.system("e2e"), username=username, **kwargs).id

    def create_local_admin(self, username: str = "root") -> int:
        return self.create_user(
            username, password=ADMIN_PASSWORD, local_admin=True, display_name="Root Admin"
        )

    def api(self, username: str = "root", password: str = ADMIN_PASSWORD) -> httpx.Client:
        """An API client signed in as a local admin (bearer token)."""
        client = httpx.Client(base_url=self.url, trust_env=False, timeout=30)
        token = client.post("/api/v1/auth/local", json={"username": username, "password": password})
        assert token.status_code == 200, token.text
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return client

    def configure_idp(self, *, test: bool = True, activate: bool = True) -> None:
        """Configure the IdP through the API as an administrator would (PUT, test, activate),
        named :data:`IDP_NAME` on the sign-in page."""
        with closing(self.api()) as api:  # a used httpx.Client cannot be entered again
            configure_idp(api, {}, self.idp, test=test, activate=activate, display_name=IDP_NAME)

    def freeze_sign_in_times(self) -> None:
        """Pin every creation and sign-in time (deterministic screenshots)."""
        from sqlalchemy import update

        from gatehouse.store.models import User

        with self.runtime.db.session() as db:
            db.execute(
                update(User)
                .where(User.last_sign_in_at.is_not(None))
                .values(last_sign_in_at=FIXED_TIME)
            )
            db.execute(update(User).values(created_at=FIXED_TIME))
        self.runtime.users.invalidate()


# -- browser steps shared by the journeys ---------------------------------------------------


def sign_in_locally(page: Page, console: Console, username: str = "root") -> None:
    """The break-glass form on /login (inside the <details> when single sign-on is active)."""
    page.goto(console.at("/login"))
    summary = page.locator("details.local-admin > summary")
    if summary.count():
        summary.click()
    page.fill("#username", username)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#local-submit")
    page.wait_for_load_state()


def sign_in_at_idp(page: Page, username: str) -> None:
    """The IdP's own login page (consent is granted automatically)."""
    page.wait_for_selector("#username")
    page.fill("#username", username)
    page.fill("#password", f"{username}-password")
    page.click("#submit")


def register_environment(console: Console, name: str = "dev") -> None:
    """An environment that has registered but never reported its component versions."""
    from gatehouse.domain import environments

    with console.runtime.db.session() as db:
        environments.register(
            db,
            Actor.system("e2e"),
            name=name,
            base_url=f"https://gatehouse.{name}.example.com",
            kind="dev",
            allow_insecure_http=False,
        )


def save_screenshot(
    page: Page, name: str, selector: str | None = None, *, full_page: bool = False
) -> Path:
    """Write docs/screenshots/<name>.png (the README shows them; the suite keeps them current).

    The caret and animations are hidden so that the same content gives the same picture.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if selector:
        page.locator(selector).screenshot(path=str(path), animations="disabled", caret="hide")
    else:
        page.screenshot(path=str(path), animations="disabled", caret="hide", full_page=full_page)
    return path


def seed_tour(console: Console) -> list[str]:
    """A console with something on every page (single sign-on active, users, an app, an
    environment, a token); returns the path of every console page, signed-in pages first."""
    from sqlalchemy import select

    from gatehouse.domain import api_tokens, apps
    from gatehouse.store.models import Environment

    root = console.create_local_admin()
    alice = console.create_user("alice", email="alice@example.com", display_name="Alice Anderson")
    console.create_user("bob", email="bob@example.com", display_name="Bob Brown")
    console.configure_idp()
    register_environment(console, "dev")  # after activation, which it would block
    with console.runtime.db.session() as db:
        app = apps.register_app(
            db,
            Actor.system("e2e"),
            name="Wiki",
            allowed_origins=["https://wiki.example.com"],
            allow_insecure_http=False,
        )
        app_id = app.id
        api_tokens.create_token(
            db,
            Actor.system("e2e"),
            user_id=root,
            name="CI deploy",
            scopes=["read"],
            allowed_scopes=frozenset({"read", "write", "admin"}),
            expires_in_days=90,
        )
        env_id = db.scalar(select(Environment.id).where(Environment.name == "dev"))
    return [
        "/",
        "/users",
        "/users?q=nobody",
        "/users/new",
        f"/users/{alice}",
        f"/users/{alice}/delete",
        "/account",
        "/account/password",
        "/audit",
        "/settings/idp",
        "/apps",
        f"/apps/{app_id}/delete",
        "/tokens",
        "/environments",
        f"/environments/{env_id}",
        "/environments/prerequisites",
        "/no-such-page",
    ]
