"""The SDK against an IdP that keeps claims out of its tokens, as OIDC allows and some IdPs do:
profile claims only in UserInfo, and refresh responses without a new ID token (OIDC Core 12.2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gatehouse.client import GatehouseAuth, TokenCache, login_browser
from gatehouse.client._cache import updated
from gatehouse.store.models import AuditEvent
from idp.fixture import OpenIDProvider
from idp.plugin import running_idp


@pytest.fixture(scope="module")
def tools_idp() -> Iterator[OpenIDProvider]:
    """Overrides the package's IdP: claims only in UserInfo, no ID token on refresh."""
    with running_idp(claims_in_id_token=False, id_token_on_refresh=False) as provider:
        yield provider


def test_sdk_signs_in_and_keeps_renewing_with_userinfo_and_no_new_id_tokens(
    server: Any, tools_idp: OpenIDProvider, tmp_path: Path
) -> None:
    cache = TokenCache(tmp_path, store="file", notify=lambda _m: None)

    def scripted_browser(url: str) -> bool:
        location = tools_idp.login(url, "alice", "alice-password")
        assert httpx.get(location, trust_env=False).status_code == 200
        return True

    session = login_browser(server.url, cache=cache, open_browser=scripted_browser)
    assert session.username == "alice", "matched through UserInfo's preferred_username"

    auth = GatehouseAuth(server.url, interactive=False, cache=cache)
    previous = session
    for _ in range(2):
        with cache.lock(server.url):
            cache.save(updated(previous, access_expires_at=time.time() - 1))
        with httpx.Client(auth=auth, base_url=server.url, trust_env=False) as api:
            me = api.get("/api/v1/me")
        assert me.status_code == 200 and me.json()["username"] == "alice"
        renewed = cache.load(server.url)
        assert renewed is not None
        assert renewed.access_token != previous.access_token
        assert renewed.refresh_token != previous.refresh_token, "rotated at the IdP"
        assert renewed.id_claims == session.id_claims, "no new ID token came"
        previous = renewed

    with server.runtime.db.session() as db:
        renewals = db.scalars(
            select(AuditEvent.outcome).where(AuditEvent.action == "token.renew")
        ).all()
    assert renewals == ["success", "success"]
