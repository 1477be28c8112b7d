"""Users API: CRUD, roles, the last-admin rule, bad input, authorisation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, User


def test_create_get_update_delete_user(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/users",
        headers=admin_headers,
        json={
            "username": "Alice",
            "email": "alice@example.com",
            "display_name": "Alice A.",
            "roles": [{"role": "Developer"}],
        },
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["username"] == "Alice" and user["status"] == "active"
    assert user["roles"] == [{"role": "Developer", "environment": None}]
    uid = user["id"]
    r = client.patch(
        f"/api/v1/users/{uid}", headers=admin_headers, json={"display_name": "Alice B."}
    )
    assert r.json()["display_name"] == "Alice B."
    assert client.get(f"/api/v1/users/{uid}", headers=admin_headers).status_code == 200
    assert client.delete(f"/api/v1/users/{uid}", headers=admin_headers).status_code == 204
    assert client.get(f"/api/v1/users/{uid}", headers=admin_headers).status_code == 404


@pytest.mark.parametrize("name", ["alice", "ALICE", "\uff21lice"])
def test_username_unique_case_insensitively_after_nfkc(
    client: TestClient, admin_headers: dict[str, str], name: str
) -> None:
    assert (
        client.post("/api/v1/users", headers=admin_headers, json={"username": "Alice"}).status_code
        == 201
    )
    r = client.post("/api/v1/users", headers=admin_headers, json={"username": name})
    assert r.status_code == 409
    assert r.json()["error"] == "username_taken"
    assert r.json()["detail"].startswith("A user named Alice already exists")


def test_duplicate_message_names_the_stored_user_not_the_typed_case(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    client.post("/api/v1/users", headers=admin_headers, json={"username": "alice"})
    r = client.post("/api/v1/users", headers=admin_headers, json={"username": "Alice"})
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "A user named alice already exists (usernames ignore case and width, so Alice is taken)."
    )


def test_apostrophes_in_usernames_and_emails_are_accepted_and_escaped(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post(
        "/api/v1/users",
        headers=admin_headers,
        json={"username": "o'brien", "email": "o'brien@example.com", "display_name": "Pat O'Brien"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["username"], body["email"]) == ("o'brien", "o'brien@example.com")
    found = client.get("/api/v1/users?q=o'b", headers=admin_headers).json()
    assert [u["username"] for u in found["items"]] == ["o'brien"]
    page = client.get(f"/users/{body['id']}", headers=admin_headers)
    assert page.status_code == 200
    assert "o&#39;brien" in page.text and "o'brien" not in page.text  # escaped in HTML


def test_search_and_pagination(
    client: TestClient, admin_headers: dict[str, str], make_user: Callable[..., int]
) -> None:
    for i in range(7):
        make_user(f"dev{i}", email=f"dev{i}@example.com")
    make_user("ops", email="ops@example.com")
    r = client.get("/api/v1/users?q=dev&per_page=3&page=2", headers=admin_headers)
    body = r.json()
    assert body["total"] == 7
    assert [u["username"] for u in body["items"]] == ["dev3", "dev4", "dev5"]
    r = client.get("/api/v1/users?q=OPS@", headers=admin_headers)
    assert [u["username"] for u in r.json()["items"]] == ["ops"]
    r = client.get("/api/v1/users?sort=-username&per_page=1", headers=admin_headers)
    assert r.json()["items"][0]["username"] == "root"


@pytest.mark.parametrize(
    "change",
    [
        ("patch", {"status": "disabled"}),
        ("patch", {"local_admin": False}),
        ("delete", None),
    ],
)
def test_last_enabled_local_admin_cannot_be_disabled_demoted_or_deleted(
    client: TestClient,
    admin_headers: dict[str, str],
    local_admin: int,
    change: tuple[str, dict[str, object] | None],
) -> None:
    method, body = change
    kwargs = {"json": body} if body is not None else {}
    r = getattr(client, method)(f"/api/v1/users/{local_admin}", headers=admin_headers, **kwargs)
    assert r.status_code == 409
    assert r.json()["error"] == "last_local_admin"


def test_a_local_admin_can_be_disabled_when_another_exists(
    client: TestClient,
    admin_headers: dict[str, str],
    local_admin: int,
    make_user: Callable[..., int],
) -> None:
    other = make_user("ops2", local_admin=True, password="ops2-password-123")
    r = client.patch(f"/api/v1/users/{other}", headers=admin_headers, json={"status": "disabled"})
    assert r.status_code == 200
    # now root is the last enabled one again
    r = client.patch(
        f"/api/v1/users/{local_admin}", headers=admin_headers, json={"status": "disabled"}
    )
    assert r.status_code == 409


def test_roles_per_environment_and_unknown_role(
    client: TestClient, admin_headers: dict[str, str], make_user: Callable[..., int]
) -> None:
    uid = make_user("dev1")
    r = client.put(
        f"/api/v1/users/{uid}/roles",
        headers=admin_headers,
        json={"roles": [{"role": "Developer"}, {"role": "Viewer"}]},
    )
    assert r.status_code == 200
    assert {x["role"] for x in r.json()["roles"]} == {"Developer", "Viewer"}
    r = client.put(
        f"/api/v1/users/{uid}/roles", headers=admin_headers, json={"roles": [{"role": "Wizard"}]}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "unknown_role"
    r = client.put(
        f"/api/v1/users/{uid}/roles",
        headers=admin_headers,
        json={"roles": [{"role": "Viewer", "environment": "nowhere"}]},
    )
    assert r.json()["error"] == "unknown_environment"


def test_non_admin_gets_403_and_can_read_me(
    client: TestClient, admin_headers: dict[str, str], make_user: Callable[..., int]
) -> None:
    make_user("dev1", password="dev1-password-123")
    token = client.post(
        "/api/v1/auth/local", json={"username": "dev1", "password": "dev1-password-123"}
    ).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert set(me.json()) >= {"id", "username", "email", "display_name", "local_admin", "roles"}
    for method, path in [
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("get", "/api/v1/audit"),
    ]:
        kwargs = {"json": {"username": "x"}} if method == "post" else {}
        r = getattr(client, method)(path, headers=headers, **kwargs)
        assert r.status_code == 403, path
        assert r.json()["error"] == "forbidden"


def test_unauthenticated_and_bad_tokens_get_401(client: TestClient) -> None:
    assert client.get("/api/v1/me").status_code == 401
    r = client.get("/api/v1/me", headers={"Authorization": "Bearer not.a.token"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    r = client.get("/api/v1/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_disabled_users_token_is_refused(
    client: TestClient, admin_headers: dict[str, str], make_user: Callable[..., int]
) -> None:
    uid = make_user("dev1", password="dev1-password-123")
    token = client.post(
        "/api/v1/auth/local", json={"username": "dev1", "password": "dev1-password-123"}
    ).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    client.patch(f"/api/v1/users/{uid}", headers=admin_headers, json={"status": "disabled"})
    r = client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401


BAD_BODIES = [
    ({"username": "ok1", "surprise": 1}, 422),  # unknown field
    ({"username": 12}, 422),  # wrong type
    ({"username": "a b"}, 400),  # invalid username
    ({"username": ""}, 400),
    ({"username": "x" * 151}, 422),
    ({"username": "ok2", "email": "not-an-email"}, 400),
    ({"username": "ok3", "password": "short"}, 400),
    ({"username": "ok4", "password": "ok4ok4ok4ok4"[:0] + "OK4" * 0 + "ok4"}, 400),
    ({"username": "ok5", "local_admin": "maybe"}, 422),
]


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
def test_bad_input_gets_clear_4xx_and_changes_nothing(
    client: TestClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    body: dict[str, object],
    status: int,
) -> None:
    with runtime.db.session() as db:
        before = db.scalar(select(func.count()).select_from(User))
        audit_before = db.scalar(select(func.count()).select_from(AuditEvent))
    r = client.post("/api/v1/users", headers=admin_headers, json=body)
    assert r.status_code == status, r.text
    payload = r.json()
    assert set(payload) == {"error", "detail"} and payload["detail"]
    with runtime.db.session() as db:
        assert db.scalar(select(func.count()).select_from(User)) == before
        assert db.scalar(select(func.count()).select_from(AuditEvent)) == audit_before


def test_password_equal_to_username_is_refused(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post(
        "/api/v1/users",
        headers=admin_headers,
        json={"username": "longusername1", "password": "LongUsername1"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "weak_password"


def test_oversized_body_is_refused_with_413(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post(
        "/api/v1/users",
        headers={**admin_headers, "Content-Type": "application/json"},
        content=b'{"username": "' + b"a" * 2_000_000 + b'"}',
    )
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"


def test_malformed_json_is_a_4xx(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/users",
        headers={**admin_headers, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"


def test_every_user_change_is_audited(
    client: TestClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    uid = client.post("/api/v1/users", headers=admin_headers, json={"username": "dev1"}).json()[
        "id"
    ]
    client.patch(f"/api/v1/users/{uid}", headers=admin_headers, json={"email": "d@example.com"})
    client.put(
        f"/api/v1/users/{uid}/roles", headers=admin_headers, json={"roles": [{"role": "Viewer"}]}
    )
    client.put(
        f"/api/v1/users/{uid}/password",
        headers=admin_headers,
        json={"password": "dev1-password-123"},
    )
    client.delete(f"/api/v1/users/{uid}", headers=admin_headers)
    r = client.get("/api/v1/audit?limit=50", headers=admin_headers)
    actions = [e["action"] for e in r.json()["items"] if e["target_id"] == str(uid)]
    assert actions == [
        "user.delete",
        "user.password_set",
        "user.roles",
        "user.update",
        "user.create",
    ]
    entry = r.json()["items"][0]
    assert entry["actor"] == "root" and entry["ip"]
