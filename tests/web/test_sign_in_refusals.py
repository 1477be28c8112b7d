"""What a person sees when a web sign-in does not end in a session, against the real IdP: the
refused identity named with "use another account" and "sign out of the IdP", Cancel at the IdP
(also when the IdP leaves ``iss`` out of its error redirect), and who the audit log says made
the changes of a sign-in."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent
from helpers import csrf_from
from idp.fixture import OpenIDProvider
from idp.plugin import running_idp
from idp_helpers import callback, configure_idp, start_location

pytestmark = pytest.mark.idp
CALLBACK = "http://127.0.0.1:8000/auth/oidc/callback"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: the subject is the pages and the flow, not the database."""
    return sqlite_url


@pytest.fixture(scope="module")
def quiet_idp() -> Iterator[OpenIDProvider]:
    """An IdP that advertises RFC 9207 ``iss`` but leaves it out of error redirects."""
    with running_idp(web_redirect_uris=[CALLBACK], iss_on_errors=False) as provider:
        yield provider


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _audit(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.db.session() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.action == action))
        return list(rows)


def test_a_refused_identity_is_named_and_another_account_or_idp_sign_out_is_offered(
    client: TestClient,
    admin_headers: dict[str, str],
    idp: OpenIDProvider,
    runtime: Runtime,
) -> None:
    configure_idp(client, admin_headers, idp, display_name="Acme SSO")
    browser = idp.new_browser()
    location = idp.login(start_location(client), "mallory", "mallory-password", client=browser)
    page = callback(client, location)

    assert page.status_code == 403
    assert "Your account is not ready" in page.text
    assert "mallory" in page.text and "preferred_username" in page.text
    assert idp.issuer in page.text
    assert "id_token" not in page.text and "eyJ" not in page.text  # never a token on the page
    assert 'href="/auth/oidc/start?return_to=%2F&amp;prompt=select_account"' in page.text
    # the sign-out form goes on to the IdP: this page's CSP allows exactly that origin
    assert f"form-action 'self' {idp.base_url}" in page.headers["content-security-policy"]
    refused = _audit(runtime, "login.oidc")[-1]
    assert (refused.outcome, refused.reason) == ("failure", "unknown_user")
    assert refused.details == {"issuer": idp.issuer, "preferred_username": "mallory"}

    # "Sign in with …" no longer reuses the refused IdP session silently
    login = client.get("/login")
    assert "prompt=select_account" in login.text
    # the test IdP does not advertise select_account: Gatehouse asks for prompt=login instead
    again = parse_qs(urlsplit(start_location(client, prompt="select_account")).query)
    assert again["prompt"] == ["login"]

    # "Sign out of Acme SSO": RP-initiated logout with the refused sign-in's ID token
    out = client.post(
        "/auth/oidc/refused-logout",
        data={"csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert out.status_code == 303
    target = urlsplit(out.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == idp.endpoint("end_session")
    query = parse_qs(target.query)
    assert query["post_logout_redirect_uri"] == ["http://127.0.0.1:8000/login"]
    assert _claims(query["id_token_hint"][0])["sub"] == "mallory-sub"
    assert idp.end_session(out.headers["location"], browser).startswith(
        "http://127.0.0.1:8000/login"
    )
    # the IdP session is gone: the next sign-in asks for credentials again
    assert idp.login(start_location(client), "alice", "alice-password", client=browser)
    # and the seal is spent
    spent = client.post(
        "/auth/oidc/refused-logout",
        data={"csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert spent.headers["location"] == "/login"


def test_use_another_account_signs_the_right_one_in_over_the_refused_idp_session(
    client: TestClient,
    admin_headers: dict[str, str],
    idp: OpenIDProvider,
    make_user: Callable[..., int],
) -> None:
    make_user("alice", email="alice@example.com")
    configure_idp(client, admin_headers, idp)
    browser = idp.new_browser()
    refused = idp.login(start_location(client), "mallory", "mallory-password", client=browser)
    assert callback(client, refused).status_code == 403
    # the same browser, its IdP session still mallory's: the IdP asks again (prompt=login)
    other = idp.login(
        start_location(client, "/account", prompt="select_account"),
        "alice",
        "alice-password",
        client=browser,
    )
    signed_in = callback(client, other)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/account"
    assert "gatehouse_refused" not in client.cookies  # the refused sign-in is forgotten
    assert client.get("/api/v1/me").json()["username"] == "alice"


def test_the_refused_sign_out_needs_the_form_token(
    client: TestClient, admin_headers: dict[str, str], idp: OpenIDProvider
) -> None:
    configure_idp(client, admin_headers, idp)
    callback(client, idp.login(start_location(client), "mallory", "mallory-password"))
    forged = client.post("/auth/oidc/refused-logout", data={}, follow_redirects=False)
    assert forged.status_code == 403


def test_a_tampered_or_absent_seal_signs_nobody_out(
    client: TestClient, admin_headers: dict[str, str], idp: OpenIDProvider
) -> None:
    configure_idp(client, admin_headers, idp)
    page = client.get("/login")
    client.cookies.set("gatehouse_refused", "A" * 200)
    out = client.post(
        "/auth/oidc/refused-logout",
        data={"csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert "could not sign you out" in client.get("/login").text


def test_cancel_at_the_idp_shows_a_cancelled_page_with_try_again(
    client: TestClient, admin_headers: dict[str, str], idp: OpenIDProvider, runtime: Runtime
) -> None:
    configure_idp(client, admin_headers, idp)
    location = idp.cancel(start_location(client, "/account"))
    assert "error=access_denied" in location and "iss=" in location
    page = callback(client, location)
    assert page.status_code == 403
    assert "Sign-in cancelled" in page.text and "access denied" in page.text
    assert 'id="try-again" href="/auth/oidc/start?return_to=%2Faccount"' in page.text
    assert _audit(runtime, "login.oidc")[-1].reason == "access_denied"


def test_cancel_at_an_idp_that_leaves_iss_out_of_errors_is_still_a_readable_page(
    client: TestClient, admin_headers: dict[str, str], quiet_idp: OpenIDProvider
) -> None:
    configure_idp(client, admin_headers, quiet_idp)
    location = quiet_idp.cancel(start_location(client))
    assert "error=access_denied" in location and "iss=" not in location
    page = callback(client, location)
    assert page.status_code == 403
    assert "Sign-in cancelled" in page.text and "iss_missing" not in page.text
    # the state is still checked: a forged error response is refused as before
    forged = location.replace("state=", "state=x")
    assert "bad_state" in callback(client, forged).text
    # a success response without iss is refused as RFC 9207 requires
    code_only = quiet_idp.login(start_location(client), "alice", "alice-password")
    assert "iss=" in code_only  # the IdP sends iss with codes
    stripped = code_only.replace("&iss=", "&x=")
    assert "iss_missing" in callback(client, stripped).text


def test_the_changes_a_sign_in_makes_are_audited_as_the_user_who_signed_in(
    client: TestClient,
    admin_headers: dict[str, str],
    idp: OpenIDProvider,
    runtime: Runtime,
    make_user: Callable[..., int],
) -> None:
    make_user("alice", email="alice@example.com")
    configure_idp(
        client,
        admin_headers,
        idp,
        scopes=["openid", "profile", "email", "groups"],
        groups_claim="groups",
        group_role_rules=[{"group": "developers", "role": "Developer"}],
    )
    assert callback(client, idp.login(start_location(client), "alice", "alice-password"))
    bound = _audit(runtime, "user.idp_bound")
    roles = _audit(runtime, "user.group_roles")
    assert [(e.actor, e.actor_id is not None) for e in bound] == [("alice", True)]
    assert [e.actor for e in roles] == ["alice"]
    assert [a.split("@")[0] for a in roles[0].details["added"]] == ["Developer"]

    # the audit log finds what was done *to* alice by her name, on the page and in the API
    created = client.get("/api/v1/audit", params={"q": "alice"}, headers=admin_headers).json()
    actions = {(e["action"], e["actor"]) for e in created["items"]}
    assert ("user.create", "test") in actions  # made by someone else, found by alice's name
    page = client.get("/audit", params={"q": "alice"}, headers=admin_headers)
    assert '<a href="/users/' in page.text and "user.create" in page.text
