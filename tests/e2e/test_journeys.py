"""The console's main journeys, in Chromium, against the real IdP."""

from __future__ import annotations

import re

import pytest
from e2e_helpers import (
    IDP_NAME,
    Console,
    register_environment,
    save_screenshot,
    sign_in_at_idp,
    sign_in_locally,
)
from playwright.sync_api import Page, expect

from gatehouse.runtime import INITIAL_PASSWORD_FILE
from idp.fixture import WEB_CLIENT_ID, WEB_CLIENT_SECRET

pytestmark = pytest.mark.browser

NEW_ADMIN_PASSWORD = "a-much-longer-password-2"


def flash(page: Page) -> str:
    return page.locator(".flash").first.inner_text()


def test_first_run_admin_changes_password_then_configures_tests_and_activates_the_idp(
    page: Page, console: Console
) -> None:
    initial = console.runtime.ensure_initial_admin()
    assert initial is not None
    password_file = console.runtime.settings.data_dir / INITIAL_PASSWORD_FILE
    assert password_file.read_text().strip() == initial

    page.goto(console.at("/"))
    expect(page).to_have_url(re.compile(r"/login\?return_to="))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Gatehouse")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(initial)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(console.at("/account/password"))
    expect(page.get_by_text("Choose a new password before you continue.")).to_be_visible()
    page.get_by_label("Current password").fill(initial)
    page.get_by_label("New password", exact=True).fill(NEW_ADMIN_PASSWORD)
    page.get_by_label("New password, again").fill(NEW_ADMIN_PASSWORD)
    page.get_by_role("button", name="Save password").click()
    expect(page.locator(".flash")).to_contain_text("Your password has been changed.")
    assert not password_file.exists()

    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Identity provider"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Identity provider")
    page.get_by_label("Display name").fill(IDP_NAME)
    page.get_by_label("Issuer URL").fill(console.idp.issuer)
    page.get_by_label("Web client id").fill(WEB_CLIENT_ID)
    page.get_by_label("Client secret").fill(WEB_CLIENT_SECRET)
    page.get_by_label("Native client id").fill("gatehouse-cli")
    page.click("#idp-save")
    expect(page.locator(".flash")).to_contain_text("Saved as configuration version 1")

    page.click("#idp-test")
    expect(page.locator(".flash")).to_contain_text("Every check passed")
    report = page.locator("#test-report li")
    expect(report.first).to_be_visible()
    assert report.count() >= 5
    expect(page.locator("#test-report li.fail")).to_have_count(0)
    expect(page.locator("#test-report li.ok")).to_have_count(report.count())

    expect(page.locator("#preconditions li.fail")).to_have_count(0)
    page.click("#idp-activate")
    expect(page.locator(".flash")).to_contain_text("Single sign-on is active")
    expect(page.locator("#idp-deactivate")).to_be_visible()

    page.goto(console.at("/login"))  # signed in: /login sends us on
    expect(page).not_to_have_url(re.compile(r"/login"))


def test_it_user_signs_in_at_the_idp_and_lands_on_the_page_they_asked_for(
    page: Page, console: Console
) -> None:
    console.create_local_admin()
    console.create_user("alice", email="alice@example.com", display_name="Alice Anderson")
    console.configure_idp()

    page.goto(console.at("/account"))
    expect(page).to_have_url(console.at("/login?return_to=%2Faccount"))
    sso = page.locator("#sso")
    expect(sso).to_have_text(f"Sign in with {IDP_NAME}")
    save_screenshot(page, "sign-in")

    sso.click()
    expect(page).to_have_url(re.compile("^" + re.escape(console.idp.base_url)))
    sign_in_at_idp(page, "alice")

    expect(page).to_have_url(console.at("/account"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    expect(page.locator(".facts")).to_contain_text("single sign-on")
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Alice Anderson")


def test_admin_creates_a_user_without_password_and_sees_passwords_are_managed_by_the_idp(
    page: Page, console: Console
) -> None:
    console.create_local_admin()
    for name, display in (("bob", "Bob Brown"), ("carol", "Carol Clark")):
        console.create_user(name, email=f"{name}@example.com", display_name=display)
    console.configure_idp()
    sign_in_locally(page, console)
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")  # the home page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()

    page.get_by_role("link", name="New user").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New user")
    box = page.get_by_role("group", name="Password")
    expect(box.locator("#password-managed")).to_contain_text(f"Passwords are managed by {IDP_NAME}")
    expect(box.get_by_label(re.compile("Password"))).to_be_hidden()
    page.get_by_role("checkbox", name="Local admin").check()  # break-glass admins keep a password
    expect(box.get_by_label(re.compile("Password"))).to_be_visible()
    page.get_by_role("checkbox", name="Local admin").uncheck()

    page.get_by_label("Username").fill("dave")
    page.get_by_label("Email").fill("dave@example.com")
    page.get_by_label("Display name").fill("Dave Davis")
    page.get_by_label("Role in every environment").select_option("Developer")
    page.get_by_role("button", name="Create user").click()

    expect(page.locator(".flash")).to_contain_text("User dave created.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("dave")
    password_card = page.locator("section", has=page.get_by_role("heading", name="Password"))
    expect(password_card.locator("#password-managed")).to_contain_text(
        f"Passwords are managed by {IDP_NAME}"
    )
    expect(page.locator("#set-password")).to_have_count(0)

    page.get_by_role("link", name="Users", exact=True).click()
    expect(page.locator("#users-table tbody tr")).to_have_count(4)
    console.freeze_sign_in_times()
    page.reload()
    save_screenshot(page, "users")


def test_activation_checklist_names_the_failing_prerequisite_in_words(
    page: Page, console: Console
) -> None:
    console.create_local_admin()
    register_environment(console, "dev")
    console.configure_idp(test=False, activate=False)
    sign_in_locally(page, console)
    page.goto(console.at("/settings/idp"))

    checklist = page.locator("#preconditions")
    untested = checklist.locator("li.fail", has_text="Configuration version 1 has not been tested")
    expect(untested).to_contain_text("press Test")
    expect(
        checklist.locator("li.fail", has_text="dev has not reported its versions")
    ).to_be_visible()

    page.click("#idp-test")
    expect(page.locator(".flash")).to_contain_text("Every check passed")
    expect(checklist.locator("li.fail")).to_have_count(1)
    expect(checklist.locator("li.ok")).to_have_count(3)
    save_screenshot(page, "activation-checklist", "#activation")

    page.click("#idp-activate")
    expect(page.locator(".flash-error")).to_contain_text("dev has not reported its versions")
    expect(page.locator("#idp-activate")).to_be_visible()  # still off


def test_sign_out_ends_the_idp_session_and_returns_to_the_sign_in_page(
    page: Page, console: Console
) -> None:
    console.create_local_admin()
    console.create_user("bob", email="bob@example.com", display_name="Bob Brown")
    console.configure_idp()
    page.goto(console.at("/login"))
    page.click("#sso")
    sign_in_at_idp(page, "bob")
    expect(page).to_have_url(console.at("/account"))

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("^" + re.escape(console.idp.base_url)))
    page.click("#logout")

    expect(page).to_have_url(re.compile("^" + re.escape(console.at("/login"))))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Gatehouse")
    page.goto(console.at("/account"))
    expect(page).to_have_url(console.at("/login?return_to=%2Faccount"))
    page.click("#sso")  # the IdP session ended too: its login form shows again
    expect(page.locator("#username")).to_be_visible()
