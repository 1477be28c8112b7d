"""The probes and the request-latency metric: every API, sign-in and console request is timed
by kind; probes and static files are not."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def counts(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    return {
        kind: float(value)
        for kind, value in re.findall(
            r'^gatehouse_request_seconds_count\{kind="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE
        )
    }


def test_requests_are_timed_by_kind_and_probes_are_not(client: TestClient) -> None:
    before = counts(client)
    assert set(before) == {"api", "auth", "console"}
    assert client.get("/api/v1/auth/idp-config").status_code == 200
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/auth/verify").status_code == 401
    assert client.get("/login").status_code == 200
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert client.get(probe).status_code == 200
    after = counts(client)
    assert after["api"] == before["api"] + 2
    assert after["auth"] == before["auth"] + 1
    assert after["console"] == before["console"] + 1
