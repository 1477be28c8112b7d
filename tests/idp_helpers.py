"""Gatehouse and the test IdP (``tests/idp/``): the one place that configures the first against
the second and signs in through it (import as ``from idp_helpers import ...``).

* :func:`idp_config` -- the configuration body for a test IdP, as an administrator PUTs it;
* :func:`configure_idp` -- PUT it, test it (must be green) and activate it through the API;
* :func:`save_idp_config` -- the same body straight into the database, OIDC marked active,
  for tests whose subject comes after activation (no test run, no activation rules);
* :func:`id_token_for` -- a tool's sign-in at the IdP (native client, PKCE): the token response;
* :func:`start_location`, :func:`callback`, :func:`sign_in`, :func:`me` -- the browser's side of
  the web flow, on a TestClient or an ``httpx.Client`` with a ``base_url``.

The IdP's clients and users are those of :mod:`idp.fixture`; the local admin password is
:data:`helpers.ADMIN_PASSWORD`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from gatehouse.domain import idp as idp_domain
from gatehouse.domain import idp_state
from gatehouse.domain.audit import Actor
from gatehouse.runtime import Runtime
from idp.fixture import CLI_CLIENT_ID, WEB_CLIENT_ID, WEB_CLIENT_SECRET, OpenIDProvider, pkce_pair


def idp_config(provider: OpenIDProvider, **overrides: Any) -> dict[str, Any]:
    """The body of ``PUT /api/v1/idp`` for ``provider``: its issuer, the web client
    (``client_secret_basic``, with its secret), the native client and the default scopes; every
    other field at Gatehouse's default unless ``overrides`` sets it."""
    body: dict[str, Any] = {
        "display_name": "Test IdP",
        "issuer": provider.issuer,
        "client_id": WEB_CLIENT_ID,
        "client_secret": WEB_CLIENT_SECRET,
        "native_client_id": CLI_CLIENT_ID,
        "scopes": ["openid", "profile", "email"],
    }
    body.update(overrides)
    return body


def configure_idp(
    api: httpx.Client,
    headers: dict[str, str],
    provider: OpenIDProvider,
    *,
    test: bool = True,
    activate: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """PUT :func:`idp_config` (``If-Match`` the current version), test it (must be green) and
    activate it, as an administrator would; returns the saved configuration.

    ``api`` is a TestClient or an ``httpx.Client`` on a live server; ``headers`` authenticate a
    local admin (empty when ``api`` carries them already).
    """
    current = api.get("/api/v1/idp", headers=headers)
    assert current.status_code == 200, current.text
    put = api.put(
        "/api/v1/idp",
        json=idp_config(provider, **overrides),
        headers={**headers, "If-Match": current.headers["ETag"]},
    )
    assert put.status_code == 200, put.text
    if test:
        checked = api.post("/api/v1/idp/test", headers=headers)
        assert checked.status_code == 200 and checked.json()["ok"], checked.text
    if activate:
        activated = api.post("/api/v1/idp/activate", headers=headers)
        assert activated.status_code == 200, activated.text
    saved: dict[str, Any] = put.json()
    return saved


def save_idp_config(
    rt: Runtime, provider: OpenIDProvider, *, active: bool = True, **overrides: Any
) -> None:
    """Store :func:`idp_config` as a new version and set the OIDC flag to ``active``, straight
    through the domain: no test run and no activation rules (those have tests of their own)."""
    data = idp_config(provider, **overrides)
    secret = data.pop("client_secret")
    with rt.db.session() as db:
        current = idp_state.get_state(db).current_version
        idp_domain.save_config(
            db,
            Actor.system("test"),
            data,
            box=rt.box,
            allow_insecure_http=True,
            if_match=current or 0,
            client_secret=secret,
        )
        idp_state.get_state(db).active = active
    rt.idp.invalidate()


def id_token_for(
    provider: OpenIDProvider,
    username: str,
    *,
    client_id: str = CLI_CLIENT_ID,
    redirect_uri: str = "http://127.0.0.1:51515/callback",
) -> dict[str, Any]:
    """Sign ``username`` in at the IdP as ``client_id`` (PKCE) and return the token response."""
    verifier, challenge = pkce_pair()
    url = provider.authorization_url(
        client_id, redirect_uri, code_challenge=challenge, scope="openid profile email"
    )
    location = provider.login(url, username, f"{username}-password")
    code = parse_qs(urlsplit(location).query)["code"][0]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    auth = None
    if client_id == CLI_CLIENT_ID:
        data["client_id"] = client_id
    else:
        auth = (client_id, WEB_CLIENT_SECRET)
    response = httpx.post(provider.endpoint("token"), data=data, auth=auth, trust_env=False)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


# -- the browser's side of the web flow ---------------------------------------------------------
def start_location(client: httpx.Client, return_to: str = "/", **params: str) -> str:
    """Where ``GET /auth/oidc/start`` sends the browser (the IdP's authorization URL)."""
    response = client.get(
        "/auth/oidc/start", params={"return_to": return_to, **params}, follow_redirects=False
    )
    assert response.status_code == 302, response.text
    return response.headers["location"]


def callback(client: httpx.Client, location: str) -> httpx.Response:
    """Request the IdP's redirect back (``http://127.0.0.1:8000/auth/oidc/callback?...``)."""
    parts = urlsplit(location)
    return client.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def sign_in(
    client: httpx.Client,
    provider: OpenIDProvider,
    username: str,
    *,
    return_to: str = "/",
    browser: httpx.Client | None = None,
) -> httpx.Response:
    """The whole web flow for ``username``; returns Gatehouse's answer to the callback."""
    location = provider.login(
        start_location(client, return_to),
        username,
        f"{username}-password",
        client=browser or provider.new_browser(),
    )
    return callback(client, location)


def me(client: httpx.Client) -> httpx.Response:
    return client.get("/api/v1/me")
