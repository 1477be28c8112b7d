"""Environment registration: one-time join tokens, credentials, deregistration, the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatehouse.domain import environments
from gatehouse.domain.audit import Actor
from gatehouse.domain.errors import Conflict, InvalidInput, Unauthenticated
from gatehouse.runtime import Runtime
from gatehouse.store.models import AuditEvent, Environment, Prerequisite

ADMIN = Actor.system("test-admin")
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def register(runtime: Runtime, name: str = "dev", now: datetime = T0) -> tuple[int, str]:
    with runtime.db.session() as db:
        env, token = environments.register(
            db,
            ADMIN,
            name=name,
            base_url=f"https://{name}.example.com",
            kind="dev",
            allow_insecure_http=False,
            now=now,
        )
        return env.id, token


def test_register_stores_only_the_hash_of_the_join_token(runtime: Runtime) -> None:
    env_id, token = register(runtime)
    with runtime.db.session() as db:
        env = db.get(Environment, env_id)
        assert env is not None
        assert token.startswith("ghj_") and token not in (env.join_token_hash or "")
        assert env.join_token_expires_at == T0 + timedelta(hours=1)
        assert env.status == "pending"


def test_register_refuses_duplicate_names_case_insensitively(runtime: Runtime) -> None:
    register(runtime, "dev")
    with pytest.raises(Conflict):
        register(runtime, "DEV")


@pytest.mark.parametrize(
    ("url", "insecure"),
    [
        ("http://dev.example.com", True),
        ("http://127.0.0.1:9000", False),
        ("ftp://dev.example.com", True),
        ("https://dev.example.com/?x=1", True),
        ("not a url", True),
    ],
)
def test_register_refuses_unsafe_public_urls(runtime: Runtime, url: str, insecure: bool) -> None:
    with runtime.db.session() as db, pytest.raises(InvalidInput):
        environments.register(
            db, ADMIN, name="dev", base_url=url, kind="dev", allow_insecure_http=insecure
        )


def test_register_allows_loopback_http_only_when_insecure_http_is_allowed(
    runtime: Runtime,
) -> None:
    with runtime.db.session() as db:
        env, _ = environments.register(
            db,
            ADMIN,
            name="dev",
            base_url="http://127.0.0.1:9000/",
            kind="test",
            allow_insecure_http=True,
        )
        assert env.base_url == "http://127.0.0.1:9000"


def test_join_token_works_once(runtime: Runtime) -> None:
    _, token = register(runtime)
    with runtime.db.session() as db:
        env, credential = environments.join(db, token, now=T0 + timedelta(minutes=5))
        assert credential.startswith("ghe_") and env.status == "joined"
    with runtime.db.session() as db, pytest.raises(Unauthenticated) as exc:
        environments.join(db, token, now=T0 + timedelta(minutes=6))
    assert exc.value.code == "invalid_join_token"


def test_expired_join_token_is_refused_and_consumed(runtime: Runtime) -> None:
    env_id, token = register(runtime)
    with runtime.db.session() as db, pytest.raises(Unauthenticated) as exc:
        environments.join(db, token, now=T0 + timedelta(hours=1, seconds=1))
    assert exc.value.code == "join_token_expired"
    with runtime.db.session() as db:
        env = db.get(Environment, env_id)
        assert env is not None and env.join_token_hash is None and env.credential_hash is None


def test_rotated_join_token_replaces_the_previous_one(runtime: Runtime) -> None:
    env_id, old = register(runtime)
    with runtime.db.session() as db:
        new = environments.rotate_join_token(
            db, ADMIN, environments.get(db, env_id), now=T0 + timedelta(minutes=1)
        )
    with runtime.db.session() as db, pytest.raises(Unauthenticated):
        environments.join(db, old, now=T0 + timedelta(minutes=2))
    with runtime.db.session() as db:
        environments.join(db, new, now=T0 + timedelta(minutes=2))


def test_credential_authenticates_until_deregistration(runtime: Runtime) -> None:
    env_id, token = register(runtime)
    with runtime.db.session() as db:
        _, credential = environments.join(db, token, now=T0)
    with runtime.db.session() as db:
        assert environments.authenticate(db, credential).id == env_id
        assert environments.authenticate(db, credential).credential_hash != credential
    with runtime.db.session() as db:
        environments.deregister(db, ADMIN, environments.get(db, env_id))
    with runtime.db.session() as db, pytest.raises(Unauthenticated) as exc:
        environments.authenticate(db, credential)
    assert exc.value.code == "invalid_environment_credential"


def test_heartbeat_stores_the_report_and_audits_version_changes(runtime: Runtime) -> None:
    env_id, token = register(runtime)
    report = environments.Report("0.1.0", 1, {"platform_server": "11.18.1"}, {"stale": False})
    with runtime.db.session() as db:
        env, _ = environments.join(db, token, now=T0)
        environments.heartbeat(db, env, report, now=T0 + timedelta(seconds=10))
        environments.heartbeat(db, env, report, now=T0 + timedelta(seconds=20))
    with runtime.db.session() as db:
        env = environments.get(db, env_id)
        assert env.versions == {"platform_server": "11.18.1"}
        assert env.protocol_version == 1 and env.last_seen_at == T0 + timedelta(seconds=20)
        actions = [e.action for e in db.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions.count("environment.versions") == 1


def test_view_reports_state_lag_and_failing_components(runtime: Runtime) -> None:
    register(runtime, "dev")
    with runtime.db.session() as db:
        (view,) = environments.view(db, now=T0)
        assert view.state == "pending" and not view.ok
        assert view.failures[0].reason == "dev has not reported its versions"


def test_component_versions_setting_is_parsed_and_junk_refused() -> None:
    assert environments.parse_component_versions(
        "platform_server=11.18.1, service_studio = 11.53.13,"
    ) == {"platform_server": "11.18.1", "service_studio": "11.53.13"}
    with pytest.raises(InvalidInput):
        environments.parse_component_versions("platform_server")


def test_prerequisite_table_edit_is_validated_and_audited(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        table = environments.prerequisite_table(db)
        assert table["platform_server"] == "11.18.1" and table["gatehouse_protocol"] == "1"
        with pytest.raises(InvalidInput):
            environments.set_prerequisites(db, ADMIN, {"platform_server": "eleven"})
    with runtime.db.session() as db:
        environments.set_prerequisites(
            db, ADMIN, {"platform_server": "12.0", "gatehouse_protocol": "1"}
        )
    with runtime.db.session() as db:
        assert {p.component: p.min_version for p in db.query(Prerequisite)} == {
            "platform_server": "12.0",
            "gatehouse_protocol": "1",
        }
        event = db.query(AuditEvent).filter_by(action="prerequisites.update").one()
        assert event.details["after"]["platform_server"] == "12.0"
