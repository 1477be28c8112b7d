"""The sync protocol end to end in one process: a console app and environment runtimes."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gatehouse.domain import environments, users
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import EncryptionContext
from gatehouse.runtime import Runtime
from gatehouse.store.models import IdPConfig, IdPState, User
from gatehouse.sync.puller import EnvironmentSync, read_status
from gatehouse.web.app import create_app
from helpers import ADMIN_PASSWORD, PUBLIC_URL, make_settings

SYSTEM = Actor.system("test")
CURRENT = (
    "platform_server=11.18.1,lifetime=11.16.1,service_studio=11.53.13,"
    "integration_studio=11.14.17,factory_configuration=11.1.1"
)


@pytest.fixture
def register(client: TestClient, admin_headers: dict[str, str]) -> Callable[[str], str]:
    def make(name: str) -> str:
        response = client.post(
            "/api/v1/environments",
            json={"name": name, "base_url": f"http://127.0.0.1:9{len(name)}00", "kind": "dev"},
            headers=admin_headers,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["join_token"])

    return make


@pytest.fixture
def make_env(
    tmp_path: Path, sqlite_template: Path, client: TestClient
) -> Iterator[Callable[..., tuple[Runtime, EnvironmentSync]]]:
    made: list[tuple[Runtime, EnvironmentSync]] = []

    def make(name: str, join_token: str, **overrides: Any) -> tuple[Runtime, EnvironmentSync]:
        db = tmp_path / f"env-{name}" / "data" / "gatehouse.db"
        db.parent.mkdir(parents=True)
        shutil.copy(sqlite_template, db)
        values: dict[str, Any] = {
            "role": "environment",
            "console_url": PUBLIC_URL,
            "join_token": join_token,
            "component_versions": CURRENT,
            "secret_key": f"env-{name}-secret-" + "y" * 32,
        }
        values.update(overrides)
        rt = Runtime(make_settings(tmp_path / f"env-{name}", f"sqlite:///{db}", **values))
        rt.start()
        rt.users.ttl = 0.0
        sync = EnvironmentSync(rt, http=client)
        made.append((rt, sync))
        return rt, sync

    yield make
    for rt, _ in made:
        rt.close()


def env_client(rt: Runtime) -> TestClient:
    return TestClient(create_app(runtime=rt), base_url=PUBLIC_URL)


def local_token(c: TestClient, username: str, password: str) -> httpx.Response:
    return c.post("/api/v1/auth/local", json={"username": username, "password": password})


def test_user_created_on_console_can_sign_in_on_environment_after_one_sync(
    runtime: Runtime, register: Callable[[str], str], make_env: Any, local_admin: int
) -> None:
    env_rt, sync = make_env("dev", register("dev"))
    with runtime.db.session() as db:
        users.create_user(db, SYSTEM, username="dana", password="dana-password-123456")
    assert sync.run_once()
    response = local_token(env_client(env_rt), "dana", "dana-password-123456")
    assert response.status_code == 200, response.text
    with env_rt.db.session() as db:
        assert read_status(db, env_rt.settings)["stale"] is False


def test_idle_sync_is_a_not_modified_answer(
    runtime: Runtime,
    register: Callable[[str], str],
    make_env: Any,
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, sync = make_env("dev", register("dev"))
    with caplog.at_level(logging.DEBUG, logger="gatehouse.sync"):
        assert sync.run_once()
        assert any(r.levelno == logging.INFO and "applied" in r.message for r in caplog.records)
        caplog.clear()
        statuses: list[int] = []
        client.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
        assert sync.run_once()
    assert statuses == [304]
    # an idle poll logs at DEBUG only: INFO is for changes and errors
    ours = [r for r in caplog.records if r.name.startswith("gatehouse")]
    assert ours and {r.levelno for r in ours} == {logging.DEBUG}


def test_roles_are_enforced_per_environment(
    runtime: Runtime, register: Callable[[str], str], make_env: Any, local_admin: int
) -> None:
    dev_rt, dev_sync = make_env("dev", register("dev"))
    prod_rt, prod_sync = make_env("prod", register("prod"))
    assert dev_sync.run_once() and prod_sync.run_once()
    with runtime.db.session() as db:
        users.create_user(
            db,
            SYSTEM,
            username="erin",
            password="erin-password-123456",
            roles=[users.RoleGrant("Administrator", "dev"), users.RoleGrant("Viewer", "prod")],
        )
    assert dev_sync.run_once() and prod_sync.run_once()
    for rt, expected, roles in (
        (dev_rt, 200, [{"role": "Administrator", "environment": "dev"}]),
        (prod_rt, 403, [{"role": "Viewer", "environment": "prod"}]),
    ):
        c = env_client(rt)
        token = local_token(c, "erin", "erin-password-123456").json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/v1/users", headers=headers).status_code == expected
        assert c.get("/api/v1/me", headers=headers).json()["roles"] == roles


def test_disabling_at_the_console_ends_access_on_the_environment(
    runtime: Runtime, register: Callable[[str], str], make_env: Any, local_admin: int
) -> None:
    env_rt, sync = make_env("dev", register("dev"))
    with runtime.db.session() as db:
        user_id = users.create_user(db, SYSTEM, username="fred", password="fred-password-12345").id
    assert sync.run_once()
    c = env_client(env_rt)
    token = local_token(c, "fred", "fred-password-12345").json()["access_token"]
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with runtime.db.session() as db:
        users.update_user(
            db,
            SYSTEM,
            users.get_user(db, user_id),
            status="disabled",
            fields_set=frozenset({"status"}),
        )
    assert sync.run_once()
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_deleted_user_disappears_from_the_environment(
    runtime: Runtime, register: Callable[[str], str], make_env: Any, local_admin: int
) -> None:
    env_rt, sync = make_env("dev", register("dev"))
    with runtime.db.session() as db:
        user_id = users.create_user(db, SYSTEM, username="gina").id
    assert sync.run_once()
    with runtime.db.session() as db:
        users.delete_user(db, SYSTEM, users.get_user(db, user_id))
    assert sync.run_once()
    with env_rt.db.session() as db:
        assert db.get(User, user_id) is None


def test_deregistered_environment_gets_401_and_keeps_its_copy(
    runtime: Runtime,
    register: Callable[[str], str],
    make_env: Any,
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    env_rt, sync = make_env("dev", register("dev"))
    assert sync.run_once()
    env_id = client.get("/api/v1/environments", headers=admin_headers).json()["items"][0]["id"]
    assert client.delete(f"/api/v1/environments/{env_id}", headers=admin_headers).status_code == 204
    assert not sync.run_once()
    with env_rt.db.session() as db:
        assert read_status(db, env_rt.settings)["last_error"] == "credential_rejected"
    assert local_token(env_client(env_rt), "root", ADMIN_PASSWORD).status_code == 200


def test_writes_to_console_owned_data_are_refused_on_an_environment(
    register: Callable[[str], str], make_env: Any, local_admin: int
) -> None:
    env_rt, sync = make_env("dev", register("dev"))
    assert sync.run_once()
    c = env_client(env_rt)
    token = local_token(c, "root", ADMIN_PASSWORD).json()["access_token"]
    response = c.post(
        "/api/v1/users", json={"username": "x"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 409
    assert response.json()["error"] == "managed_by_console"
    headers = {"Authorization": f"Bearer {token}"}
    for method, path in (("PUT", "/api/v1/idp"), ("POST", "/api/v1/idp/activate")):
        refused = c.request(method, path, json={}, headers=headers)
        assert (refused.status_code, refused.json()["error"]) == (409, "managed_by_console")
    assert c.get("/api/v1/users", headers=headers).status_code == 200  # reads still work


def test_heartbeat_reports_versions_so_prerequisites_pass(
    runtime: Runtime, register: Callable[[str], str], make_env: Any
) -> None:
    _, sync = make_env("dev", register("dev"), component_versions="platform_server=11.17.0")
    assert sync.run_once()
    assert sync.run_once()  # the console learns the applied revision from the next pull
    with runtime.db.session() as db:
        (view,) = environments.view(db)
    assert view.state == "online" and view.sync_lag == 0
    assert "dev reports platform_server 11.17.0, needs >= 11.18.1" in [
        f.reason for f in view.failures
    ]


def test_idp_configuration_is_copied_with_the_secret_reencrypted(
    runtime: Runtime,
    register: Callable[[str], str],
    make_env: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env_rt, sync = make_env("dev", register("dev"))
    with runtime.db.session() as db:
        db.add(
            IdPConfig(
                version=1,
                created_by="root",
                data={"issuer": "https://idp.example.com", "client_id": "web"},
                client_secret_enc=runtime.box.encrypt_str(
                    "s3cret", context=EncryptionContext.IDP_CLIENT_SECRET
                ),
            )
        )
        db.merge(IdPState(id=1, current_version=1, active=True, last_test_report=[]))
    with caplog.at_level("WARNING", logger="gatehouse.sync"):
        assert sync.run_once()
    # copied all the same (user changes must not wait for it), and the missing field is named
    assert "version 1 is not valid here (display_name: display_name is required.)" in caplog.text
    with env_rt.db.session() as db:
        config = db.get(IdPConfig, 1)
        state = db.get(IdPState, 1)
        assert config is not None and state is not None and state.active
        assert config.data["issuer"] == "https://idp.example.com"
        assert config.client_secret_enc is not None
        assert (
            env_rt.box.decrypt_str(
                config.client_secret_enc, context=EncryptionContext.IDP_CLIENT_SECRET
            )
            == "s3cret"
        )
