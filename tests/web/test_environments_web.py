"""Environments through the API and the console pages (admins only, token shown once)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, Environment
from helpers import console_login, csrf_from


def test_register_returns_join_token_once_with_the_command(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    response = client.post(
        "/api/v1/environments",
        json={"name": "dev", "base_url": "https://dev.example.com", "kind": "dev"},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["join_token"].startswith("ghj_")
    assert body["command"] == (
        "GATEHOUSE_PUBLIC_URL=https://dev.example.com gatehouse serve --role environment "
        f"--console http://127.0.0.1:8000 --join-token {body['join_token']}"
    )
    listed = client.get(f"/api/v1/environments/{body['environment']['id']}", headers=admin_headers)
    assert "join_token" not in listed.json() and listed.json()["state"] == "pending"


def test_environment_list_is_paginated_like_users(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    for name in ("prod", "dev", "test"):
        registered = client.post(
            "/api/v1/environments",
            json={"name": name, "base_url": f"https://{name}.example.com", "kind": name},
            headers=admin_headers,
        )
        assert registered.status_code == 201, registered.text
    first = client.get("/api/v1/environments?per_page=2", headers=admin_headers).json()
    assert (first["total"], first["page"], first["per_page"]) == (3, 1, 2)
    second = client.get("/api/v1/environments?per_page=2&page=2", headers=admin_headers).json()
    names = [e["name"] for e in first["items"] + second["items"]]
    assert sorted(names) == ["dev", "prod", "test"] and len(set(names)) == 3
    assert client.get("/api/v1/environments?per_page=0", headers=admin_headers).status_code == 422


def test_environment_api_is_for_administrators(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    assert client.get("/api/v1/environments").status_code == 401
    assert client.get("/api/v1/environments/prerequisites").status_code == 401


def test_http_public_url_is_refused_off_loopback(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/environments",
        json={"name": "dev", "base_url": "http://dev.example.com", "kind": "dev"},
        headers=admin_headers,
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_url"


def test_prerequisite_report_marks_each_environment(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    assert client.get("/api/v1/environments/prerequisites", headers=admin_headers).json()["ok"]
    client.post(
        "/api/v1/environments",
        json={"name": "prod", "base_url": "https://prod.example.com", "kind": "prod"},
        headers=admin_headers,
    )
    report = client.get("/api/v1/environments/prerequisites", headers=admin_headers).json()
    assert report["ok"] is False
    assert report["environments"][0]["mark"] == "fail"
    assert report["environments"][0]["failures"][0]["reason"] == (
        "prod has not reported its versions"
    )


def test_minimums_can_be_edited_and_bad_versions_are_refused(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    url = "/api/v1/environments/prerequisites/minimums"
    table = client.get(url, headers=admin_headers).json()["minimums"]
    table["platform_server"] = "12.0.1"
    saved = client.put(url, json={"minimums": table}, headers=admin_headers)
    assert saved.status_code == 200 and saved.json()["minimums"]["platform_server"] == "12.0.1"
    bad = client.put(url, json={"minimums": {"lifetime": "latest"}}, headers=admin_headers)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_version"


def test_console_registers_shows_token_once_and_deregisters(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    page = client.get("/environments")
    assert page.status_code == 200
    shown = client.post(
        "/environments",
        data={
            "name": "test",
            "base_url": "https://test.example.com",
            "kind": "test",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert shown.status_code == 200
    token = re.search(r'id="join-token" readonly value="(ghj_[^"]+)"', shown.text)
    assert token is not None
    assert f"--join-token {token.group(1)}" in shown.text
    with runtime.db.session() as db:
        env = db.query(Environment).one()
        env_id = env.id
    detail = client.get(f"/environments/{env_id}")
    assert token.group(1) not in detail.text
    assert "test has not reported its versions" in detail.text
    confirm = client.get(f"/environments/{env_id}/deregister")
    done = client.post(
        f"/environments/{env_id}/deregister",
        data={"csrf_token": csrf_from(confirm.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    with runtime.db.session() as db:
        assert db.query(Environment).count() == 0
        assert db.query(AuditEvent).filter_by(action="environment.deregister").count() == 1


def test_console_prerequisites_editor_saves_the_table(
    client: TestClient, local_admin: int, runtime: Runtime
) -> None:
    console_login(client)
    page = client.get("/environments/prerequisites")
    assert "platform_server" in page.text
    saved = client.post(
        "/environments/prerequisites",
        data={
            "component": ["platform_server", "gatehouse_protocol", ""],
            "min_version": ["11.20", "1", ""],
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    again = client.get("/environments/prerequisites")
    assert 'value="11.20"' in again.text and "lifetime" not in again.text
