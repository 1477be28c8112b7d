"""What an administrator sees when the IdP cannot be reached: Test names the cause."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from idp.fixture import OpenIDProvider, free_port
from idp_helpers import configure_idp


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


def test_test_names_why_discovery_failed(
    client: TestClient, admin_headers: dict[str, str], idp: OpenIDProvider
) -> None:
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    configure_idp(client, admin_headers, idp, test=False, activate=False, issuer=gone)
    report = client.post("/api/v1/idp/test", headers=admin_headers).json()
    assert report["ok"] is False
    discovery = report["checks"][0]
    assert discovery["name"] == "discovery" and not discovery["ok"]
    assert discovery["detail"] == (
        "The identity provider's discovery document could not be reached (connection refused)."
    )
