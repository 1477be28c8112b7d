"""Issue 8: several ``gatehouse serve`` replicas on one PostgreSQL behave as one Gatehouse.

Two real replicas (subprocesses, different ports) share one database, one secret key and one
public URL (a round-robin proxy in front of them). The test picks the replica of each request
explicitly, as an unsticky load balancer might: a sign-in starts on A and finishes on B, a
logout on one ends the session on both, and so on.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from replicas import Replica, RoundRobin, replica_env, run_cli
from sqlalchemy import create_engine, func, select, text

from gatehouse.domain import ratelimit
from gatehouse.domain.errors import TooManyAttempts
from gatehouse.runtime import Runtime
from gatehouse.settings import Settings
from gatehouse.store.migrate import head_revision
from gatehouse.store.models import RateLimitBucket, Role, User
from gatehouse.store.models import Session as SessionRow
from helpers import (
    REDIS_URL,
    postgres_problem,
    redis_problem,
    require_service,
    scratch_postgres,
)
from idp.fixture import OpenIDProvider
from idp.plugin import require_idp
from idp_helpers import configure_idp

pytestmark = [pytest.mark.postgres, pytest.mark.idp, pytest.mark.xdist_group("replicas")]

ROOT_PASSWORD = "replica-root-password-1"


@dataclass
class Cluster:
    a: Replica
    b: Replica
    balancer: RoundRobin
    idp: OpenIDProvider
    database_url: str

    @property
    def public_url(self) -> str:
        return self.balancer.url

    def token(self, replica: Replica, username: str = "root", password: str = ROOT_PASSWORD) -> str:
        response = httpx.post(
            f"{replica.url}/api/v1/auth/local", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    require_service(postgres_problem(), "PostgreSQL")
    with scratch_postgres("gatehouse_replicas") as url:
        yield url


@pytest.fixture(scope="module")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Replicas A and B behind a round-robin proxy, the IdP configured and active, users made."""
    require_idp()
    root = tmp_path_factory.mktemp("replicas")
    replicas: list[Replica] = []
    balancer: RoundRobin | None = None
    idp: OpenIDProvider | None = None
    try:
        # The proxy needs the replicas' ports and the replicas need the proxy's URL.
        probe_env = replica_env(postgres_url, "http://127.0.0.1")
        a, b = Replica("a", root, probe_env), Replica("b", root, probe_env)
        replicas = [a, b]
        balancer = RoundRobin([a.port, b.port]).start()
        env = replica_env(postgres_url, balancer.url)
        for replica in replicas:
            replica.env = {**env, "GATEHOUSE_DATA_DIR": str(replica.data_dir)}
        bootstrap = run_cli(
            env, "admin", "bootstrap", "--username", "root", "--password-stdin", stdin=""
        )
        out, _ = bootstrap.communicate(ROOT_PASSWORD + "\n", timeout=60)
        assert bootstrap.returncode == 0, out
        for replica in replicas:
            replica.launch()
        for replica in replicas:
            replica.wait_ready()
        idp = OpenIDProvider(web_redirect_uris=[f"{balancer.url}/auth/oidc/callback"]).start()
        result = Cluster(a, b, balancer, idp, postgres_url)
        headers = {"Authorization": f"Bearer {result.token(a)}"}
        with httpx.Client(base_url=a.url, timeout=30) as api:
            configure_idp(api, headers, idp)
        for name in ("alice", "bob"):
            made = httpx.post(f"{b.url}/api/v1/users", json={"username": name}, headers=headers)
            assert made.status_code == 201, made.text
        yield result
    finally:
        for replica in replicas:
            replica.stop()
        if idp is not None:
            idp.stop()
        if balancer is not None:
            balancer.stop()


def sign_in(cluster: Cluster, browser: httpx.Client, *, start: Replica, finish: Replica) -> str:
    """Start the web flow on ``start``, sign in at the IdP, deliver the callback to ``finish``.

    Returns the Location Gatehouse answered the callback with.
    """
    begun = browser.get(f"{start.url}/auth/oidc/start", follow_redirects=False)
    assert begun.status_code == 302, begun.text
    location = cluster.idp.login(
        begun.headers["location"], "alice", "alice-password", client=cluster.idp.new_browser()
    )
    assert location.startswith(f"{cluster.public_url}/auth/oidc/callback?"), location
    parts = urlsplit(location)
    done = browser.get(f"{finish.url}{parts.path}?{parts.query}", follow_redirects=False)
    assert done.status_code == 303, done.text
    return done.headers["location"]


def me(replica: Replica, browser: httpx.Client) -> httpx.Response:
    return browser.get(f"{replica.url}/api/v1/me")


def csrf_token(replica: Replica, browser: httpx.Client) -> str:
    page = browser.get(f"{replica.url}/account")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


# -- web sign-in and logout -------------------------------------------------------------------
def test_sign_in_started_on_one_replica_finishes_on_another(cluster: Cluster) -> None:
    with httpx.Client(timeout=30) as browser:
        assert sign_in(cluster, browser, start=cluster.a, finish=cluster.b) == "/"
        for replica in (cluster.a, cluster.b):
            response = me(replica, browser)
            assert response.status_code == 200, response.text
            assert response.json()["username"] == "alice"


def test_logout_on_one_replica_ends_the_session_on_every_replica(cluster: Cluster) -> None:
    with httpx.Client(timeout=30) as browser:
        sign_in(cluster, browser, start=cluster.b, finish=cluster.a)
        assert me(cluster.a, browser).status_code == 200
        assert me(cluster.b, browser).status_code == 200
        logout = browser.post(
            f"{cluster.b.url}/logout",
            data={"csrf_token": csrf_token(cluster.b, browser)},
            follow_redirects=False,
        )
        assert logout.status_code == 303
        assert logout.headers["location"].startswith(cluster.idp.endpoint("end_session"))
        assert me(cluster.a, browser).status_code == 401
        assert me(cluster.b, browser).status_code == 401


def test_backchannel_logout_through_the_balancer_ends_the_session_on_every_replica(
    cluster: Cluster,
) -> None:
    with httpx.Client(timeout=30) as browser:
        sign_in(cluster, browser, start=cluster.a, finish=cluster.b)
        assert me(cluster.a, browser).status_code == 200
        engine = create_engine(cluster.database_url)
        with engine.connect() as conn:  # this sign-in's IdP session (earlier tests made others)
            sid = conn.scalar(
                select(SessionRow.idp_sid)
                .where(SessionRow.method == "oidc", SessionRow.revoked_at.is_(None))
                .order_by(SessionRow.created_at.desc())
                .limit(1)
            )
        engine.dispose()
        before = sum(cluster.balancer.connections.values())
        result = cluster.idp.backchannel_logout("gatehouse-web", "alice-sub", sid)
        assert result["delivered"], result
        assert result["uri"].startswith(cluster.public_url)
        assert sum(cluster.balancer.connections.values()) > before  # it went through the proxy
        assert me(cluster.a, browser).status_code == 401
        assert me(cluster.b, browser).status_code == 401


# -- lockout and rate limits --------------------------------------------------------------------
def test_lockout_counts_failures_on_every_replica_together(cluster: Cluster) -> None:
    headers = {"Authorization": f"Bearer {cluster.token(cluster.a)}"}
    name = f"breakglass{uuid.uuid4().hex[:6]}"
    password = "breakglass-password-77"
    made = httpx.post(
        f"{cluster.a.url}/api/v1/users",
        json={"username": name, "password": password, "local_admin": True},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    for attempt in range(5):  # lockout_attempts = 5, spread over both replicas
        replica = (cluster.a, cluster.b)[attempt % 2]
        wrong = httpx.post(
            f"{replica.url}/api/v1/auth/local", json={"username": name, "password": "wrong-1"}
        )
        assert wrong.status_code == 401, wrong.text
    for replica in (cluster.a, cluster.b):  # now even the right password is refused on both
        locked = httpx.post(
            f"{replica.url}/api/v1/auth/local", json={"username": name, "password": password}
        )
        assert locked.status_code == 429, locked.text
        assert locked.json()["error"] == "locked_out"
        assert int(locked.headers["Retry-After"]) > 0


@pytest.fixture(params=["database", "redis"])
def limiter_store(request: pytest.FixtureRequest) -> str | None:
    """The rate-limit store each replica is configured with: None = the database, or Redis."""
    if request.param == "redis":
        require_service(redis_problem(), "Redis")
        return REDIS_URL
    return None


def test_rate_limits_are_counted_together_by_every_replica(
    cluster: Cluster, limiter_store: str | None, tmp_path: Path
) -> None:
    """Each runtime (as each replica builds it, with its own connections) counts into the same
    buckets: the limit is reached by the sum of both replicas' hits, not per replica."""
    runtimes = [
        Runtime(
            Settings(
                data_dir=tmp_path / name,
                database_url=cluster.database_url,
                public_url=cluster.public_url,
                secret_key="replica-shared-secret-key-" + "r" * 32,
                allow_insecure_http=True,
                redis_url=limiter_store,
            )
        )
        for name in ("a", "b")
    ]
    limit = ratelimit.Limit(f"replica_test_{uuid.uuid4().hex[:8]}", 5, 86_400)
    subject = "203.0.113.7"
    try:
        for hit in range(limit.limit):
            runtimes[hit % 2].ratelimit.hit(limit, subject)
        for rt in runtimes:
            with pytest.raises(TooManyAttempts) as refused:
                rt.ratelimit.hit(limit, subject)
            assert refused.value.code == "rate_limited" and refused.value.retry_after > 0
        with runtimes[0].db.session() as db:
            stored = db.scalar(
                select(func.count())
                .select_from(RateLimitBucket)
                .where(RateLimitBucket.key == f"{limit.name}:{subject}")
            )
        # With Redis the counters must live there, not in the database fallback.
        assert stored == (0 if limiter_store else 1)
    finally:
        for rt in runtimes:
            rt.close()


# -- signing keys -----------------------------------------------------------------------------
def test_token_issued_by_one_replica_is_accepted_by_the_other(cluster: Cluster) -> None:
    for issuer, verifier in ((cluster.a, cluster.b), (cluster.b, cluster.a)):
        token = cluster.token(issuer)
        response = httpx.get(
            f"{verifier.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["username"] == "root"
    jwks = [httpx.get(f"{r.url}/api/v1/auth/jwks").json() for r in (cluster.a, cluster.b)]
    assert jwks[0] == jwks[1] and len(jwks[0]["keys"]) == 1


def _kid(token: str) -> str:
    import base64
    import json

    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def test_key_rotation_on_one_replica_is_picked_up_by_the_other(cluster: Cluster) -> None:
    old_token = cluster.token(cluster.b)
    engine = create_engine(cluster.database_url)
    with engine.begin() as conn:  # the signing key reached its rotation age (30 days) ...
        conn.execute(
            text("UPDATE signing_keys SET created_at = created_at - :age"),
            {"age": timedelta(days=30, hours=6)},
        )
    engine.dispose()
    cluster.a.restart()  # ... so A, starting, rotates it
    new_token = cluster.token(cluster.a)
    assert _kid(new_token) != _kid(old_token)
    # B has never seen the new key: it reloads the keys on the unknown kid (within its cooldown).
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(
            f"{cluster.b.url}/api/v1/me", headers={"Authorization": f"Bearer {new_token}"}
        )
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 200, response.text
    kids = {k["kid"] for k in httpx.get(f"{cluster.b.url}/api/v1/auth/jwks").json()["keys"]}
    assert kids == {_kid(old_token), _kid(new_token)}
    # Tokens signed with the previous key stay valid on both until the key retires.
    for replica in (cluster.a, cluster.b):
        response = httpx.get(
            f"{replica.url}/api/v1/me", headers={"Authorization": f"Bearer {old_token}"}
        )
        assert response.status_code == 200, response.text
    # B's next token is signed with the new key too (it reloads before signing).
    assert _kid(cluster.token(cluster.b)) == _kid(new_token)


# -- migrations -------------------------------------------------------------------------------
def test_db_upgrade_while_replicas_serve_is_a_no_op(cluster: Cluster) -> None:
    upgrade = run_cli(cluster.a.env, "db", "upgrade")
    out, _ = upgrade.communicate(timeout=60)
    assert upgrade.returncode == 0, out
    for replica in (cluster.a, cluster.b):
        assert httpx.get(f"{replica.url}/readyz").status_code == 200


def test_replicas_starting_together_on_an_empty_database_migrate_it_once(
    tmp_path: Path,
) -> None:
    require_service(postgres_problem(), "PostgreSQL")
    with scratch_postgres("gatehouse_migrate") as url:
        env = replica_env(url, "http://127.0.0.1:8000")
        replicas = [Replica(name, tmp_path, env) for name in ("r1", "r2")]
        upgrades = [
            run_cli({**env, "GATEHOUSE_DATA_DIR": str(tmp_path / f"u{i}")}, "db", "upgrade")
            for i in range(2)
        ]
        try:
            for replica in replicas:
                replica.launch()
            outputs = [u.communicate(timeout=90)[0] for u in upgrades]
            assert [u.returncode for u in upgrades] == [0, 0], outputs
            for replica in replicas:
                replica.wait_ready()
        finally:
            for replica in replicas:
                replica.stop()
            for u in upgrades:
                if u.poll() is None:
                    u.kill()
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
                assert [v[0] for v in versions] == [head_revision(engine)]
                # Seed rows of the first migration exist once: it ran once.
                assert conn.scalar(select(func.count()).select_from(Role)) == 3
                admins = conn.execute(select(User.username).where(User.local_admin)).all()
                assert [a[0] for a in admins] == ["admin"]  # one first-run admin, not two
        finally:
            engine.dispose()
