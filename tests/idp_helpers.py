"""Helpers for the tools' sign-in tests: an IdP configured and active, native-client tokens."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from gatehouse.domain import idp as idp_domain
from gatehouse.domain import idp_state
from gatehouse.domain.audit import Actor
from gatehouse.runtime import Runtime
from idp.fixture import CLI_CLIENT_ID, WEB_CLIENT_ID, WEB_CLIENT_SECRET, OpenIDProvider, pkce_pair

#: The local admin password of tests/conftest.py (not importable from a nested conftest).
ADMIN_PASSWORD = "break-glass-password-1"


def configure_idp(rt: Runtime, provider: OpenIDProvider, **overrides: Any) -> None:
    """Save an IdP configuration for ``provider`` (web + native client) and mark OIDC active."""
    data: dict[str, Any] = {
        "display_name": "Test IdP",
        "issuer": provider.issuer,
        "client_id": WEB_CLIENT_ID,
        "token_endpoint_auth_method": "client_secret_basic",
        "native_client_id": CLI_CLIENT_ID,
        "scopes": ["openid", "profile", "email"],
        "user_claim": "preferred_username",
        "clock_skew_seconds": 30,
        **overrides,
    }
    with rt.db.session() as db:
        current = idp_state.get_state(db).current_version
        idp_domain.save_config(
            db,
            Actor.system("test"),
            data,
            box=rt.box,
            allow_insecure_http=True,
            if_match=current or 0,
            client_secret=WEB_CLIENT_SECRET,
        )
        idp_state.get_state(db).active = True
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


def configure_idp_via_api(
    api: httpx.Client, headers: dict[str, str], provider: OpenIDProvider
) -> None:
    """PUT the configuration, test it (must be green) and activate it, as an admin would."""
    current = api.get("/api/v1/idp", headers=headers)
    assert current.status_code == 200, current.text
    body = {
        "display_name": "Test IdP",
        "issuer": provider.issuer,
        "client_id": WEB_CLIENT_ID,
        "client_secret": WEB_CLIENT_SECRET,
        "native_client_id": CLI_CLIENT_ID,
        "scopes": ["openid", "profile", "email"],
    }
    put = api.put(
        "/api/v1/idp", json=body, headers={**headers, "If-Match": current.headers["ETag"]}
    )
    assert put.status_code == 200, put.text
    test = api.post("/api/v1/idp/test", headers=headers)
    assert test.status_code == 200 and test.json()["ok"], test.text
    activated = api.post("/api/v1/idp/activate", headers=headers)
    assert activated.status_code == 200, activated.text
