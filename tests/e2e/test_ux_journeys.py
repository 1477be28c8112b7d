"""What a person sees, in Chromium against the real IdP: the API docs, the wrong IdP account,
Cancel at the IdP, an ended session, and the home page with its charts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from e2e_helpers import (
    IDP_NAME,
    Console,
    register_environment,
    save_screenshot,
    sign_in_at_idp,
    sign_in_locally,
)
from playwright.sync_api import ConsoleMessage, Page, expect
from sqlalchemy import select

from gatehouse.store.models import AuditEvent, utcnow
from gatehouse.store.models import Session as SessionRow

pytestmark = pytest.mark.browser


def test_api_docs_render_swagger_ui_from_gatehouse_under_its_csp(
    page: Page, console: Console
) -> None:
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", watch)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(console.at("/api/docs"))
    title = page.locator(".swagger-ui .info .title")
    expect(title).to_be_visible()
    expect(title).to_contain_text("Gatehouse")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() > 20
    page.locator(".opblock-summary-path", has_text="/api/v1/me").first.click()
    expect(page.locator(".opblock.is-open").first).to_be_visible()
    assert problems == []


def test_wrong_idp_account_names_it_and_use_another_account_signs_in_the_right_one(
    page: Page, console: Console
) -> None:
    console.create_local_admin()
    console.create_user("alice", email="alice@example.com", display_name="Alice Anderson")
    console.configure_idp()
    page.goto(console.at("/account"))
    page.click("#sso")
    sign_in_at_idp(page, "mallory")  # exists at the IdP, not in Gatehouse

    expect(page.get_by_role("heading", level=1)).to_have_text("Your account is not ready")
    identity = page.locator("#refused-identity")
    expect(identity).to_contain_text("mallory")
    expect(identity).to_contain_text(IDP_NAME)
    expect(page.locator("#idp-sign-out")).to_have_text(f"Sign out of {IDP_NAME}")
    save_screenshot(page, "wrong-account", "#oidc-error")

    page.click("#use-another-account")
    # the IdP asks again instead of silently reusing mallory's session
    expect(page).to_have_url(re.compile("^" + re.escape(console.idp.base_url)))
    sign_in_at_idp(page, "alice")
    expect(page).to_have_url(console.at("/account"))
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Alice Anderson")


def test_sign_out_of_the_idp_from_a_refused_sign_in(page: Page, console: Console) -> None:
    console.create_local_admin()
    console.configure_idp()
    page.goto(console.at("/login"))
    page.click("#sso")
    sign_in_at_idp(page, "mallory")
    page.click("#idp-sign-out")
    expect(page).to_have_url(re.compile("^" + re.escape(console.idp.base_url)))
    page.click("#logout")  # the IdP's own "sign out?" confirmation
    expect(page).to_have_url(re.compile("^" + re.escape(console.at("/login"))))
    page.click("#sso")
    expect(page.locator("#username")).to_be_visible()  # the IdP session is gone


def test_cancel_at_the_idp_shows_a_page_to_try_again(page: Page, console: Console) -> None:
    console.create_local_admin()
    console.configure_idp()
    page.goto(console.at("/account"))
    page.click("#sso")
    page.click("#cancel")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in cancelled")
    expect(page.locator("#oidc-error")).to_contain_text("access denied")
    page.click("#try-again")
    expect(page.locator("#username")).to_be_visible()
    sign_in_at_idp(page, "mallory")  # the sign-in goes on from there: refused, and named
    expect(page.locator("#refused-identity")).to_contain_text("mallory")


def test_an_ended_session_is_explained_and_the_typed_form_comes_back(
    page: Page, console: Console
) -> None:
    console.create_local_admin()
    sign_in_locally(page, console)
    page.goto(console.at("/users/new"))
    page.get_by_label("Username").fill("o'brien")
    page.get_by_label("Email").fill("pat.obrien@example.com")
    page.get_by_label("Display name").fill("Pat O'Brien")
    with console.runtime.db.session() as db:  # 31 minutes without a request
        row = db.scalars(select(SessionRow).where(SessionRow.revoked_at.is_(None))).one()
        row.last_seen_at = row.last_seen_at - timedelta(minutes=31)
    page.get_by_role("button", name="Create user").click()

    expect(page).to_have_url(re.compile(r"/login\?return_to=%2Fusers%2Fnew$"))
    notice = page.locator(".flash-info")
    expect(notice).to_contain_text("Your session ended after 30 minutes of inactivity")
    expect(notice).to_contain_text("What you typed is kept")
    page.fill("#username", "root")
    sign_in_locally(page, console)
    page.goto(console.at("/users/new"))
    expect(page.get_by_label("Username")).to_have_value("o'brien")
    expect(page.get_by_label("Email")).to_have_value("pat.obrien@example.com")
    expect(page.get_by_label("Display name")).to_have_value("Pat O'Brien")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator(".flash")).to_contain_text("User o'brien created.")


def test_the_home_page_shows_health_at_a_glance_with_charts(page: Page, console: Console) -> None:
    console.create_local_admin()
    console.create_user("alice", email="alice@example.com", display_name="Alice Anderson")
    console.configure_idp()
    register_environment(console, "dev")
    now = utcnow()
    with console.runtime.db.session() as db:
        for hours_ago in range(24):
            at = now - timedelta(hours=hours_ago, minutes=5)
            for n in range(3 + (hours_ago * 7) % 9):
                db.add(AuditEvent(at=at, actor="a", action="login.oidc", details={}))
            if hours_ago % 3 == 0:
                for reason in ("unknown_user", "access_denied")[: 1 + hours_ago % 2]:
                    db.add(
                        AuditEvent(
                            at=at,
                            actor="anonymous",
                            action="login.oidc",
                            outcome="failure",
                            reason=reason,
                            details={},
                        )
                    )
        db.add(
            AuditEvent(
                at=now - timedelta(hours=2),
                actor="session",
                action="session.refresh_failed",
                outcome="failure",
                reason="idp_unavailable",
                details={},
            )
        )
    sign_in_locally(page, console)
    page.goto(console.at("/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(page.locator("#sso-state")).to_contain_text("active")
    expect(page.locator("#live-version")).to_have_text("1")
    expect(page.locator("#environments-state")).to_contain_text("dev")
    chart = page.locator("#signins-chart svg")
    expect(chart).to_be_visible()
    assert page.locator("#signins-chart rect.ok").count() == 24
    assert page.locator("#signins-chart rect.fail").count() == 8
    expect(page.locator("#reasons-chart")).to_contain_text("unknown_user")
    expect(page.locator("#problems")).to_contain_text("Session refresh failed")
    save_screenshot(page, "home", full_page=True)
