"""Shared fixtures: a migrated database per test (SQLite and PostgreSQL), a runtime, an app.

PostgreSQL runs wherever ``GATEHOUSE_TEST_POSTGRES_URL`` points (``make test`` and ``.ci/run`` set
it). When the server cannot be reached the PostgreSQL variants fail in CI (``CI=true``) and are
skipped with a reason elsewhere.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from gatehouse.domain import access_tokens, idp_state, passwords, users
from gatehouse.domain.audit import Actor
from gatehouse.runtime import Runtime
from gatehouse.store.db import make_engine
from gatehouse.store.migrate import upgrade
from gatehouse.store.models import Base
from gatehouse.web.app import create_app
from helpers import (
    ADMIN_PASSWORD,
    PUBLIC_URL,
    make_settings,
    postgres_problem,
    require_service,
    scratch_postgres,
)

pytest_plugins = ["idp.plugin"]


# -- password hashing ---------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def cheap_argon2_in_process() -> Iterator[None]:
    """argon2id at its cheapest inside the test process: each test's admin costs a millisecond
    instead of a fifth of a second of set-up. Servers started as subprocesses, and the tests
    that ask for ``production_argon2``, hash with the production parameters."""
    production = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    passwords._dummy_hash.cache_clear()
    try:
        yield
    finally:
        passwords._hasher = production
        passwords._dummy_hash.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def signing_keys_from_a_pool() -> Iterator[None]:
    """Gatehouse's RSA signing keys come from four made once per test process (each test's
    runtime would otherwise spend ~150 ms generating one); every key still gets its own kid."""
    pool = itertools.cycle(
        [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4)]
    )
    generate = access_tokens._generate_rsa_key
    access_tokens._generate_rsa_key = lambda: next(pool)
    try:
        yield
    finally:
        access_tokens._generate_rsa_key = generate


@pytest.fixture
def production_argon2(monkeypatch: pytest.MonkeyPatch) -> Iterator[PasswordHasher]:
    """The production hasher (RFC 9106 low-memory profile), for tests about its cost."""
    hasher = PasswordHasher()
    monkeypatch.setattr(passwords, "_hasher", hasher)
    passwords._dummy_hash.cache_clear()
    yield hasher
    passwords._dummy_hash.cache_clear()


# -- databases --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("template") / "gatehouse.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (dropped afterwards)."""
    require_service(postgres_problem(), "PostgreSQL")
    with scratch_postgres() as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


_SEEDED = ("roles", "prerequisites", "alembic_version")


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = [t.name for t in Base.metadata.sorted_tables if t.name not in _SEEDED]
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(text("DELETE FROM prerequisites"))
        conn.execute(
            text(
                "INSERT INTO prerequisites (component, min_version) VALUES "
                "('platform_server','11.18.1'),('lifetime','11.16.1'),"
                "('service_studio','11.53.13'),('integration_studio','11.14.17'),"
                "('factory_configuration','11.1.1')"
            )
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """Each test that uses it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        target = tmp_path / "data" / "gatehouse.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_database")
    _reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only — for integration tests whose subject is not the database."""
    target = tmp_path / "data" / "gatehouse.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


# -- runtime and app --------------------------------------------------------------------------
@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def runtime(
    tmp_path: Path, database_url: str, settings_overrides: dict[str, Any]
) -> Iterator[Runtime]:
    rt = Runtime(make_settings(tmp_path, database_url, **settings_overrides))
    rt.start()
    rt.users.ttl = 0.0  # tests observe changes at once
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def app(runtime: Runtime) -> Any:
    return create_app(runtime=runtime)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url=PUBLIC_URL) as c:
        yield c


@pytest.fixture
def local_admin(runtime: Runtime) -> int:
    """A local admin ``root`` with ADMIN_PASSWORD; returns its id."""
    with runtime.db.session() as db:
        user = users.create_user(
            db, Actor.system("test"), username="root", password=ADMIN_PASSWORD, local_admin=True
        )
        return user.id


@pytest.fixture
def admin_headers(client: TestClient, local_admin: int) -> dict[str, str]:
    response = client.post(
        "/api/v1/auth/local", json={"username": "root", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def set_oidc_active(runtime: Runtime) -> Callable[[bool], None]:
    """Flip the 'OIDC active' flag directly (activation preconditions are tested elsewhere)."""

    def flip(active: bool) -> None:
        with runtime.db.session() as db:
            idp_state.get_state(db).active = active

    return flip


@pytest.fixture
def make_user(runtime: Runtime) -> Callable[..., int]:
    def make(username: str, **kwargs: Any) -> int:
        with runtime.db.session() as db:
            return users.create_user(db, Actor.system("test"), username=username, **kwargs).id

    return make
