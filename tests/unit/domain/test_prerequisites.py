"""Prerequisites: every registered environment must report current versions, recently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from gatehouse import PROTOCOL_VERSION
from gatehouse.domain.prerequisites import PROTOCOL_COMPONENT, environment_failures
from gatehouse.runtime import Runtime
from gatehouse.store.models import Environment, Prerequisite

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CURRENT = {
    "platform_server": "11.18.1",
    "lifetime": "11.16.1",
    "service_studio": "11.53.13",
    "integration_studio": "11.14.17",
    "factory_configuration": "11.1.1",
}


def add_env(db: Session, name: str, **fields: Any) -> Environment:
    values: dict[str, Any] = {
        "base_url": f"https://{name}.example.com",
        "versions": dict(CURRENT),
        "protocol_version": PROTOCOL_VERSION,
        "last_seen_at": NOW - timedelta(seconds=30),
    }
    values.update(fields)
    env = Environment(name=name, **values)
    db.add(env)
    db.flush()
    return env


def reasons(runtime: Runtime) -> list[str]:
    with runtime.db.session() as db:
        return [f.reason for f in environment_failures(db, now=NOW)]


def test_green_when_no_environment_is_registered(runtime: Runtime) -> None:
    assert reasons(runtime) == []


def test_green_when_every_environment_reports_current_versions(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        add_env(db, "dev")
        add_env(db, "prod", versions={**CURRENT, "platform_server": "11.20"})
    assert reasons(runtime) == []


def test_old_component_version_fails_with_what_it_reports_and_needs(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        add_env(db, "dev", versions={**CURRENT, "platform_server": "11.17.0"})
    assert reasons(runtime) == ["dev reports platform_server 11.17.0, needs >= 11.18.1"]


def test_versions_compare_numerically_not_as_strings(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        add_env(db, "dev", versions={**CURRENT, "service_studio": "11.100.0"})
        add_env(db, "test", versions={**CURRENT, "service_studio": "11.9.99"})
    assert reasons(runtime) == ["test reports service_studio 11.9.99, needs >= 11.53.13"]


def test_environment_that_never_reported_fails(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        add_env(db, "prod", versions={}, last_seen_at=None, protocol_version=None)
    assert reasons(runtime) == ["prod has not reported its versions"]


def test_silent_environment_fails_with_how_long_ago(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        add_env(db, "test", last_seen_at=NOW - timedelta(minutes=12))
    assert reasons(runtime) == [
        "test has not reported in the last 5 minutes (last seen 12 min ago)"
    ]


def test_old_protocol_version_fails(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        add_env(db, "dev", protocol_version=0)
    assert reasons(runtime) == [f"dev speaks sync protocol 0, needs >= {PROTOCOL_VERSION}"]


def test_protocol_minimum_is_read_from_the_prerequisites_table(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        db.add(Prerequisite(component=PROTOCOL_COMPONENT, min_version="7"))
        add_env(db, "dev")
    assert reasons(runtime) == [f"dev speaks sync protocol {PROTOCOL_VERSION}, needs >= 7"]


def test_missing_component_fails(runtime: Runtime) -> None:
    versions = {k: v for k, v in CURRENT.items() if k != "lifetime"}
    with runtime.db.session() as db:
        add_env(db, "dev", versions=versions)
    assert reasons(runtime) == ["dev does not report lifetime, needs >= 11.16.1"]


def test_unparseable_version_fails_with_a_sentence(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        add_env(db, "dev", versions={**CURRENT, "lifetime": "eleven"})
    assert reasons(runtime) == [
        "dev reports lifetime 'eleven', which is not a version (needs >= 11.16.1)"
    ]


def test_edited_minimum_applies(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        row = db.get(Prerequisite, "platform_server")
        assert row is not None
        row.min_version = "12.0"
        add_env(db, "dev")
    with runtime.db.session() as db:
        failures = environment_failures(db, now=NOW)
    assert [(f.environment, f.component) for f in failures] == [("dev", "platform_server")]
    assert failures[0].reason == "dev reports platform_server 11.18.1, needs >= 12.0"


def test_every_failing_environment_is_listed(runtime: Runtime) -> None:
    with runtime.db.session() as db:
        add_env(db, "dev")
        add_env(db, "prod", versions={**CURRENT, "lifetime": "11.0"}, protocol_version=0)
    with runtime.db.session() as db:
        failures = environment_failures(db, now=NOW)
    assert {f.environment for f in failures} == {"prod"}
    assert {f.component for f in failures} == {"lifetime", PROTOCOL_COMPONENT}
