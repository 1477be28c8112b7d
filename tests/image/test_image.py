"""Issue 19: the container image, built from this checkout and run for real with Podman.

``make image-test`` runs this module (marker ``image``; the plain ``make test`` deselects it). It
bootstraps ``debian:bookworm-slim`` when the machine has none (``engine.ensure_base``), builds
the Dockerfile, and then:

1. runs the console on SQLite with a named volume, a read-only root file system, no
   capabilities: health and readiness answer, the first admin's password is in the volume
   (0600, owned by the image's non-root user), that admin signs in through the API, and a new
   container on the same volume finds everything again;
2. runs two console replicas of the image on a scratch PostgreSQL database behind the host's
   nginx running ``deploy/nginx.conf`` (the Compose file's balancer), migrated and bootstrapped
   by one-shot containers (``gatehouse db upgrade``, ``gatehouse admin bootstrap``), and signs
   a user in through the real test IdP: started on one replica and finished on the other, both
   ways, and once through the balancer; an environment server from the same image
   (``GATEHOUSE_ROLE=environment``) joins through the balancer and syncs the users.

In CI (``CI`` set) missing podman, PostgreSQL or the IdP fail the run instead of skipping it.
"""

from __future__ import annotations

import hashlib
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import engine
import httpx
import pytest
from engine import Container, NginxBalancer, Podman

from helpers import postgres_problem, require_service, scratch_postgres
from idp.fixture import OpenIDProvider, free_port
from idp.plugin import require_idp
from idp_helpers import configure_idp

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

MAX_IMAGE_BYTES = 250 * 1000 * 1000  # the target, uncompressed
UID = 10001
SECRET_KEY = "image-test-secret-key-" + "i" * 32
ROOT_PASSWORD = "image-root-password-1"
#: How every Gatehouse container of this module is confined.
HARDENED = [
    "--read-only",
    "--read-only-tmpfs=false",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
]


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    require_service(engine.problem(), "Container image")
    with engine.machine_lock("image-test"):
        yield Podman()


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    """The image built from this checkout (the base bootstrapped first when missing)."""
    base = engine.ensure_base(podman)
    engine.FACTS["base image"] = f"{base.source} in {base.seconds:.0f} s"
    seconds = engine.build(podman)
    engine.FACTS["build"] = f"{seconds:.0f} s"
    size = engine.image_size(podman)
    engine.FACTS["image size"] = f"{size / 1e6:.0f} MB uncompressed ({engine.IMAGE})"
    return engine.IMAGE


def unique(prefix: str) -> str:
    return f"gatehouse-test-{prefix}-{uuid.uuid4().hex[:8]}"


# -- 1. the image itself ----------------------------------------------------------------------
def test_image_stays_under_250_mb(podman: Podman, image: str) -> None:
    size = engine.image_size(podman, image)
    assert size <= MAX_IMAGE_BYTES, f"the image is {size / 1e6:.0f} MB"


def test_image_carries_no_pip_compiler_source_or_build_time_trust_settings(
    podman: Podman, image: str
) -> None:
    # As root, so that nothing is hidden behind a directory the image's user cannot read.
    script = (
        "find / -xdev \\( -name pip.conf -o -name pip-ca.crt -o -name 'pip-*.crt' \\) "
        "-printf 'present: %p\\n'; "
        "ls -A /root | grep -vxE '[.](bashrc|profile)' | sed 's/^/in \\/root: /'; "
        "for p in /src /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease; do "
        '[ -e "$p" ] && echo "present: $p"; done; '
        'for c in pip pip3 gcc cc strip; do command -v $c && echo "command: $c"; done; '
        'python3 -c \'import importlib.util as u; print("module: pip") if u.find_spec("pip") '
        "else None'; true"
    )
    result = podman.run(
        "run",
        "--rm",
        "--user=0",
        "--entrypoint=sh",
        *podman.container_flags(),
        image,
        "-c",
        script,
    )
    assert result.stdout.strip() == "", result.stdout


def test_image_config_serves_as_a_non_root_user_with_a_volume_port_and_healthcheck(
    podman: Podman, image: str
) -> None:
    inspected = podman.inspect("image", image)
    config: dict[str, Any] = inspected["Config"]  # type: ignore[assignment]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["gatehouse"] and config["Cmd"] == ["serve"]
    assert list(config["ExposedPorts"]) == ["8000/tcp"]
    assert list(config["Volumes"]) == ["/var/lib/gatehouse"]
    assert "GATEHOUSE_DATA_DIR=/var/lib/gatehouse" in config["Env"]
    healthcheck: dict[str, Any] = inspected["Healthcheck"]  # type: ignore[assignment]
    assert "/healthz" in " ".join(healthcheck["Test"])


# -- 2. the console on SQLite with a volume ---------------------------------------------------
@dataclass
class SqliteConsole:
    podman: Podman
    volume: str
    port: int
    container: Container

    @property
    def url(self) -> str:
        return self.container.url

    @property
    def data(self) -> Path:
        volume: dict[str, Any] = self.podman.inspect("volume", self.volume)  # type: ignore[assignment]
        return Path(volume["Mountpoint"])

    def replace_container(self) -> None:
        """A new container on the same volume, as an upgrade or a rescheduling would do."""
        self.container.remove()
        self.container = self.new_container().start()

    def new_container(self) -> Container:
        return Container(
            self.podman,
            unique("sqlite"),
            self.port,
            {"GATEHOUSE_PUBLIC_URL": f"http://127.0.0.1:{self.port}"},
            args=HARDENED,
            volume=self.volume,
        )


@pytest.fixture(scope="module")
def sqlite_console(podman: Podman, image: str) -> Iterator[SqliteConsole]:
    volume = unique("data")
    podman.run("volume", "create", volume)
    console = SqliteConsole(podman, volume, free_port(), None)  # type: ignore[arg-type]
    console.container = console.new_container()
    try:
        console.container.start()
        yield console
    finally:
        console.container.remove()
        podman.run("volume", "rm", "--force", volume, check=False)


def initial_password(console: SqliteConsole) -> str:
    return (console.data / "initial-admin-password").read_text().strip()


def local_token(url: str, username: str, password: str) -> str:
    response = httpx.post(
        f"{url}/api/v1/auth/local", json={"username": username, "password": password}, timeout=30
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_console_on_sqlite_answers_health_readiness_and_its_healthcheck(
    sqlite_console: SqliteConsole,
) -> None:
    health = httpx.get(f"{sqlite_console.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    ready = httpx.get(f"{sqlite_console.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}, ready.text
    check = sqlite_console.podman.run(
        "healthcheck", "run", sqlite_console.container.name, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_console_runs_as_a_non_root_user_on_a_read_only_root(
    sqlite_console: SqliteConsole,
) -> None:
    container = sqlite_console.container
    assert container.exec("id", "-u").stdout.strip() == str(UID)
    status = container.exec("cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(UID)] * 4, uid_line
    host_config: dict[str, Any] = sqlite_console.podman.inspect("container", container.name)[
        "HostConfig"
    ]  # type: ignore[assignment]
    assert host_config["ReadonlyRootfs"] is True
    # Not even /tmp is writable: the server needs nothing but its volume.
    write = container.exec("sh", "-c", "echo x > /tmp/probe", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr, write


def test_first_admin_password_is_in_the_volume_with_mode_0600(
    sqlite_console: SqliteConsole,
) -> None:
    data = sqlite_console.data
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert data.stat().st_uid == UID
    for name in ("initial-admin-password", "secret.key", "gatehouse.db"):
        info = (data / name).stat()
        assert stat.S_IMODE(info.st_mode) == 0o600, (name, oct(info.st_mode))
        assert info.st_uid == UID, (name, info.st_uid)
    assert len(initial_password(sqlite_console)) >= 20
    assert "First run" in sqlite_console.container.logs()


def test_first_admin_signs_in_through_the_api(sqlite_console: SqliteConsole) -> None:
    token = local_token(sqlite_console.url, "admin", initial_password(sqlite_console))
    me = httpx.get(f"{sqlite_console.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "admin" and me.json()["local_admin"] is True


def test_a_new_container_on_the_same_volume_keeps_the_data(
    sqlite_console: SqliteConsole,
) -> None:
    password = initial_password(sqlite_console)
    key_digest = hashlib.sha256((sqlite_console.data / "secret.key").read_bytes()).hexdigest()
    headers = {"Authorization": f"Bearer {local_token(sqlite_console.url, 'admin', password)}"}
    made = httpx.post(
        f"{sqlite_console.url}/api/v1/users",
        json={"username": "kept-user", "email": "kept@example.com"},
        headers=headers,
    )
    assert made.status_code == 201, made.text

    sqlite_console.replace_container()

    logs = sqlite_console.container.logs()
    assert "First run" not in logs, logs
    assert initial_password(sqlite_console) == password
    after = hashlib.sha256((sqlite_console.data / "secret.key").read_bytes()).hexdigest()
    assert after == key_digest
    # An access token issued before the restart is still valid: the signing key was kept.
    still = httpx.get(f"{sqlite_console.url}/api/v1/me", headers=headers)
    assert still.status_code == 200, still.text
    users = httpx.get(
        f"{sqlite_console.url}/api/v1/users", params={"q": "kept-user"}, headers=headers
    )
    assert users.status_code == 200, users.text
    assert [u["username"] for u in users.json()["items"]] == ["kept-user"]


# -- 3. two replicas on PostgreSQL, the real IdP ----------------------------------------------
@dataclass
class Cluster:
    podman: Podman
    a: Container
    b: Container
    balancer: NginxBalancer
    idp: OpenIDProvider
    env: dict[str, str]

    @property
    def public_url(self) -> str:
        return self.balancer.url

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {local_token(self.a.url, 'root', ROOT_PASSWORD)}"}


def one_shot(
    podman: Podman, image: str, env: dict[str, str], *args: str, stdin: str | None = None
) -> str:
    """``podman run --rm`` of a ``gatehouse`` command (a release step, a Kubernetes Job)."""
    result = podman.run(
        "run",
        "--rm",
        *(["--interactive"] if stdin is not None else []),
        *podman.container_flags(),
        *HARDENED,
        *(f"--env={k}" for k in env),
        image,
        *args,
        env=env,
        stdin=stdin,
    )
    return result.stdout


@pytest.fixture(scope="module")
def cluster(
    podman: Podman, image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    require_service(postgres_problem(), "PostgreSQL")
    require_service(engine.nginx_problem(), "nginx")
    require_idp()
    containers: list[Container] = []
    balancer: NginxBalancer | None = None
    idp: OpenIDProvider | None = None
    with scratch_postgres("gatehouse_image") as database_url:
        try:
            ports = [free_port(), free_port()]
            balancer = NginxBalancer(ports, tmp_path_factory.mktemp("balancer")).start()
            env = {
                "GATEHOUSE_DATABASE_URL": database_url,
                "GATEHOUSE_SECRET_KEY": SECRET_KEY,
                "GATEHOUSE_PUBLIC_URL": balancer.url,
                "GATEHOUSE_ALLOW_INSECURE_HTTP": "true",  # the test IdP is http on loopback
                "GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1",
                "GATEHOUSE_LOG_LEVEL": "WARNING",
            }
            upgraded = one_shot(podman, image, env, "db", "upgrade")
            assert "is at revision" in " ".join(upgraded.split()), upgraded
            one_shot(
                podman,
                image,
                env,
                "admin",
                "bootstrap",
                "--username",
                "root",
                "--password-stdin",
                stdin=ROOT_PASSWORD + "\n",
            )
            a = Container(podman, unique("replica-a"), ports[0], env, args=HARDENED)
            b = Container(podman, unique("replica-b"), ports[1], env, args=HARDENED)
            containers += [a, b]
            for replica in (a, b):
                replica.start()
            idp = OpenIDProvider(web_redirect_uris=[f"{balancer.url}/auth/oidc/callback"]).start()
            result = Cluster(podman, a, b, balancer, idp, env)
            headers = result.admin()
            with httpx.Client(base_url=a.url, timeout=30) as api:
                configure_idp(api, headers, idp)  # type: ignore[arg-type]
            made = httpx.post(f"{b.url}/api/v1/users", json={"username": "alice"}, headers=headers)
            assert made.status_code == 201, made.text
            yield result
        finally:
            for container in containers:
                container.remove()
            if idp is not None:
                idp.stop()
            if balancer is not None:
                balancer.stop()


def sign_in(cluster: Cluster, browser: httpx.Client, start: str, finish: str) -> str:
    """The web flow begun at ``start``, the IdP's redirect delivered to ``finish`` (base URLs)."""
    begun = browser.get(f"{start}/auth/oidc/start", follow_redirects=False)
    assert begun.status_code == 302, begun.text
    location = cluster.idp.login(
        begun.headers["location"], "alice", "alice-password", client=cluster.idp.new_browser()
    )
    assert location.startswith(f"{cluster.public_url}/auth/oidc/callback?"), location
    parts = urlsplit(location)
    done = browser.get(f"{finish}{parts.path}?{parts.query}", follow_redirects=False)
    assert done.status_code == 303, done.text
    return done.headers["location"]


@pytest.mark.parametrize("direction", ["a-to-b", "b-to-a"])
def test_sign_in_through_the_idp_starts_on_one_replica_and_finishes_on_the_other(
    cluster: Cluster, direction: str
) -> None:
    start, finish = (cluster.a, cluster.b) if direction == "a-to-b" else (cluster.b, cluster.a)
    with httpx.Client(timeout=30) as browser:
        assert sign_in(cluster, browser, start.url, finish.url) == "/"
        for replica in (cluster.a, cluster.b):
            me = browser.get(f"{replica.url}/api/v1/me")
            assert me.status_code == 200, me.text
            assert me.json()["username"] == "alice"


def test_sign_in_through_the_compose_files_balancer_is_served_by_both_replicas(
    cluster: Cluster,
) -> None:
    replicas = (cluster.a.port, cluster.b.port)
    before = [cluster.balancer.requests_to(port) for port in replicas]
    with httpx.Client(timeout=30) as browser:
        assert sign_in(cluster, browser, cluster.public_url, cluster.public_url) == "/"
        for _ in range(4):
            me = browser.get(f"{cluster.public_url}/api/v1/me")
            assert me.status_code == 200, me.text
            assert me.json()["username"] == "alice"
    after = [cluster.balancer.requests_to(port) for port in replicas]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


def test_environment_role_is_a_setting_of_the_same_image(cluster: Cluster, image: str) -> None:
    headers = cluster.admin()
    port = free_port()
    registered = httpx.post(
        f"{cluster.a.url}/api/v1/environments",
        json={"name": "dev", "base_url": f"http://127.0.0.1:{port}", "kind": "dev"},
        headers=headers,
    )
    assert registered.status_code == 201, registered.text
    environment = Container(
        cluster.podman,
        unique("environment"),
        port,
        {
            "GATEHOUSE_ROLE": "environment",
            "GATEHOUSE_CONSOLE_URL": cluster.public_url,
            "GATEHOUSE_JOIN_TOKEN": registered.json()["join_token"],
            "GATEHOUSE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GATEHOUSE_SYNC_INTERVAL_SECONDS": "1",
            "GATEHOUSE_ALLOW_INSECURE_HTTP": "true",
        },
        args=HARDENED,
    )
    try:
        environment.start()
        deadline = time.monotonic() + 30
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = httpx.get(f"{environment.url}/api/v1/sync/status").json()
            if status.get("joined") and status.get("revision") is not None:
                break
            time.sleep(0.5)
        assert status.get("role") == "environment" and status.get("joined"), status
        assert status.get("revision") is not None, (status, environment.logs())
        # The environment has the console's users: alice, created on replica B, is there.
        token = local_token(environment.url, "root", ROOT_PASSWORD)
        users = httpx.get(
            f"{environment.url}/api/v1/users",
            params={"q": "alice"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert users.status_code == 200, users.text
        assert [u["username"] for u in users.json()["items"]] == ["alice"]
    finally:
        environment.remove()
