"""Build and run the Gatehouse image with Podman on a machine that cannot pull base images.

Import as ``from engine import ...`` (``tests/image`` is on ``sys.path`` when its tests run).

* :func:`ensure_base` gives the Dockerfile its ``FROM debian:bookworm-slim``: an image pulled
  earlier is used as it is; otherwise Debian's ``mmdebstrap`` bootstraps a minimal bookworm root
  file system from the Debian archive (cached as a tarball under ``GATEHOUSE_IMAGE_CACHE``,
  default ``/var/cache/gatehouse-image``) and ``podman import`` tags it with that name.
* :func:`build` runs ``podman build`` on the checkout with the machine's pip trust settings
  handed in as a build-time mount (never written into the image or the Dockerfile).
* :class:`Podman` runs podman as root with the flags this machine needs (``--runtime runc
  --cgroup-manager=cgroupfs``, explicit ulimits, the host network).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from configparser import ConfigParser
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/gatehouse:image-test"
BUILD_STAGE_IMAGE = "localhost/gatehouse-build:image-test"
CACHE_DIR = Path(os.environ.get("GATEHOUSE_IMAGE_CACHE", "/var/cache/gatehouse-image"))
#: A cached root file system older than this is bootstrapped again (security updates).
BASE_MAX_AGE_DAYS = 30
RECIPE_LABEL = "org.gatehouse.base-recipe"
IMAGE_LABEL = "org.opencontainers.image.title=gatehouse"  # set by both stages of the Dockerfile
PROGRAMS = ("podman", "runc", "mmdebstrap")
#: Figures of this run (base image, build time, size), printed in pytest's summary.
FACTS: dict[str, str] = {}

# What `debian:bookworm-slim` is: minbase, merged /usr, no documentation, man pages or locales
# (the copyright files stay), the release, its updates and its security archive.
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--mode=root",
    "--format=tar",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    '--aptopt=Acquire::Languages "none"',
)


class EngineError(RuntimeError):
    """A podman or mmdebstrap command failed; the message carries its output."""


def problem() -> str | None:
    """Why images cannot be built and run here, or None."""
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install mmdebstrap podman runc)"
    if os.geteuid() != 0:
        return "building and running the image with podman needs root on this machine"
    return None


def _limits() -> list[str]:
    """Explicit ulimits: podman's defaults exceed what the sandbox lets a container set."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    return [f"--ulimit=nofile={nofile}:{nofile}", "--ulimit=nproc=4096:4096"]


@dataclass
class Podman:
    """``podman`` with this machine's global flags; every call checks its exit code."""

    command: tuple[str, ...] = ("podman", "--runtime", "runc", "--cgroup-manager=cgroupfs")

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.command, *args],
            env={**os.environ, **(env or {})},
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise EngineError(
                f"podman {' '.join(args[:3])} … exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def inspect(self, kind: str, name: str) -> dict[str, object]:
        data = json.loads(self.run(kind, "inspect", name).stdout)
        assert isinstance(data, list) and data, data
        item = data[0]
        assert isinstance(item, dict)
        return item

    def exists(self, kind: str, name: str) -> bool:
        return self.run(kind, "exists", name, check=False).returncode == 0

    def container_flags(self) -> list[str]:
        return ["--network=host", *_limits()]


# -- the base image ---------------------------------------------------------------------------
def _recipe_key() -> str:
    recipe = json.dumps({"options": MMDEBSTRAP_OPTIONS, "mirrors": MIRRORS, "suite": "bookworm"})
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """One image test at a time on this machine (they share the image tag and the cache)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class BaseReport:
    """How the base image was obtained, for the run's summary."""

    source: str  # "existing image", "cached tarball", "bootstrapped"
    seconds: float


def ensure_base(podman: Podman) -> BaseReport:
    """Make ``debian:bookworm-slim`` available locally (see the module docstring)."""
    started = time.monotonic()
    key = _recipe_key()
    tarball = CACHE_DIR / f"debian-bookworm-slim-{key}.tar"
    fresh = tarball.exists() and time.time() - tarball.stat().st_mtime < BASE_MAX_AGE_DAYS * 86400
    label = f"{key}-{int(tarball.stat().st_mtime)}" if fresh else None
    if podman.exists("image", BASE_IMAGE):
        labels = podman.inspect("image", BASE_IMAGE).get("Labels") or {}
        assert isinstance(labels, dict)
        ours = labels.get(RECIPE_LABEL)
        if ours is None or (label is not None and ours == label):
            # A pulled image (no label of ours), or the one imported from the cached tarball.
            return BaseReport("existing image", time.monotonic() - started)
    source = "cached tarball"
    if not fresh:
        source = "bootstrapped"
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        result = subprocess.run(
            ["mmdebstrap", *MMDEBSTRAP_OPTIONS, "bookworm", str(partial), *MIRRORS],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise EngineError(f"mmdebstrap failed:\n{result.stderr[-4000:]}")
        partial.replace(tarball)
        for stale in CACHE_DIR.glob("debian-bookworm-slim-*.tar"):
            if stale != tarball:
                stale.unlink()
        label = f"{key}-{int(tarball.stat().st_mtime)}"
    podman.run(
        "import",
        "--change",
        f"LABEL {RECIPE_LABEL}={label}",
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        'CMD ["bash"]',
        str(tarball),
        BASE_IMAGE,
        timeout=300,
    )
    return BaseReport(source, time.monotonic() - started)


# -- pip's trust settings for the build -------------------------------------------------------
def _pip_config() -> dict[str, str]:
    """pip's effective global settings on this machine (``pip config list``)."""
    result = subprocess.run(
        ["python3", "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    )
    values: dict[str, str] = {}
    for line in result.stdout.splitlines():
        name, sep, raw = line.partition("=")
        if sep:
            values[name.split(".", 1)[-1]] = raw.strip().strip("'\"")
    return values


def pip_ca_bundle() -> Path | None:
    """The CA bundle pip trusts here (TLS inspection re-signs the package registries)."""
    config = _pip_config()
    for candidate in (
        os.environ.get("PIP_CERT"),
        config.get("cert"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _network_indexes(urls: str) -> list[str]:
    """The http(s) entries of a pip index setting (file:// indexes exist only on the host)."""
    return [u for u in urls.split() if urllib.parse.urlsplit(u).scheme in ("http", "https")]


@contextmanager
def pip_build_home() -> Iterator[Path]:
    """A directory mounted read-only as the build's ``/root``: ``.config/pip/pip.conf`` naming
    the CA bundle (``/root/pip-ca.crt``) and this machine's package index, if it has its own.

    Mounted over a directory the base image already has, so the build leaves no empty mount
    points behind in the image (files mounted at new paths, such as ``/etc/pip.conf``, would).
    """
    config = _pip_config()
    parser = ConfigParser()
    parser["global"] = {}
    with tempfile.TemporaryDirectory(prefix="gatehouse-pip-") as raw:
        home = Path(raw)
        bundle = pip_ca_bundle()
        if bundle is not None:
            shutil.copyfile(bundle, home / "pip-ca.crt")
            parser["global"]["cert"] = "/root/pip-ca.crt"
        index = os.environ.get("PIP_INDEX_URL") or config.get("index-url", "")
        if _network_indexes(index):
            parser["global"]["index-url"] = _network_indexes(index)[0]
        extra = os.environ.get("PIP_EXTRA_INDEX_URL") or config.get("extra-index-url", "")
        if _network_indexes(extra):
            parser["global"]["extra-index-url"] = " ".join(_network_indexes(extra))
        (home / ".config" / "pip").mkdir(parents=True)
        with open(home / ".config" / "pip" / "pip.conf", "w") as fh:
            parser.write(fh)
        home.chmod(0o755)
        yield home


# -- the image --------------------------------------------------------------------------------
def build(podman: Podman, tag: str = IMAGE, context: Path = REPO) -> float:
    """Build the checkout's Dockerfile; returns the seconds it took.

    The build stage is tagged too, so that removing what earlier builds left behind keeps the
    cache this build can reuse next time.
    """
    started = time.monotonic()
    previous = podman.inspect("image", tag)["Id"] if podman.exists("image", tag) else None
    with pip_build_home() as home:
        common = [
            "build",
            "--pull=never",
            "--format=docker",  # the OCI format has no HEALTHCHECK
            "--layers",
            "--network=host",
            *_limits(),
            f"--volume={home}:/root:ro",
        ]
        podman.run(
            *common, "--target=build", f"--tag={BUILD_STAGE_IMAGE}", str(context), timeout=1200
        )
        podman.run(*common, f"--tag={tag}", str(context), timeout=1200)
    if previous != podman.inspect("image", tag)["Id"]:
        remove_stale_images(podman, keep=(tag, BUILD_STAGE_IMAGE))
    return time.monotonic() - started


def _chain(podman: Podman, ref: str) -> set[str]:
    """An image and the intermediate images of its build (the layer cache)."""
    ids: set[str] = set()
    while ref:
        info = podman.inspect("image", ref)
        ids.add(str(info["Id"]))
        ref = str(info.get("Parent") or "")
    return ids


def remove_stale_images(podman: Podman, keep: Sequence[str]) -> None:
    """Remove the images earlier builds of the Dockerfile left (each is a few hundred MB),
    keeping ``keep`` and their build cache; images without the Dockerfile's label (the base,
    anything else on the machine) are never touched."""
    wanted = set().union(*(_chain(podman, ref) for ref in keep))
    listed = podman.run("images", "--all", "--quiet", "--no-trunc", f"--filter=label={IMAGE_LABEL}")
    stale = [i for i in listed.stdout.split() if i.removeprefix("sha256:") not in wanted]
    if stale:
        podman.run("rmi", *stale, check=False, timeout=300)


def image_size(podman: Podman, tag: str = IMAGE) -> int:
    size = podman.inspect("image", tag)["Size"]
    assert isinstance(size, int)
    return size


# -- containers -------------------------------------------------------------------------------
@dataclass
class Container:
    """One ``podman run -d`` of the image on the host network (it binds 127.0.0.1:port)."""

    podman: Podman
    name: str
    port: int
    env: dict[str, str]
    args: Sequence[str] = ()
    volume: str | None = None
    image: str = IMAGE
    command: Sequence[str] = ()
    started: bool = field(default=False, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> Container:
        env = {
            "GATEHOUSE_HOST": "127.0.0.1",
            "GATEHOUSE_PORT": str(self.port),
            **self.env,
        }
        volume = [f"--volume={self.volume}:/var/lib/gatehouse"] if self.volume else []
        self.podman.run(
            "run",
            "--detach",
            f"--name={self.name}",
            *self.podman.container_flags(),
            *volume,
            *(f"--env={k}" for k in env),  # values from podman's environment, not its argv
            *self.args,
            self.image,
            *self.command,
            env=env,
        )
        self.started = True
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.podman.inspect("container", self.name)["State"]
            assert isinstance(state, dict)
            if not state.get("Running"):
                raise EngineError(f"container {self.name} exited:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise EngineError(f"container {self.name} did not become ready:\n{self.logs()}")

    def exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.podman.run("exec", self.name, *args, check=check)

    def logs(self) -> str:
        result = self.podman.run("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-4000:]

    def remove(self) -> None:
        if self.started:
            self.podman.run("rm", "--force", "--volumes", "--time=10", self.name, check=False)
            self.started = False


# -- the load balancer of deploy/compose.yaml -------------------------------------------------
NGINX_CONF = REPO / "deploy" / "nginx.conf"


def nginx_problem() -> str | None:
    return None if shutil.which("nginx") else "nginx is not installed (apt-get install nginx-light)"


class NginxBalancer:
    """The host's nginx running ``deploy/nginx.conf`` in front of containers on loopback ports.

    Only what differs between Compose's network and this host is rewritten: the replicas'
    addresses, the listening address and the temporary directories.
    """

    def __init__(self, ports: Sequence[int], root: Path) -> None:
        from idp.fixture import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        conf = NGINX_CONF.read_text()
        names = ("console-a:8000", "console-b:8000")
        for name, port in zip(names, ports, strict=True):
            assert f"server {name} " in conf, f"{NGINX_CONF} no longer names {name}"
            conf = conf.replace(f"server {name} ", f"server 127.0.0.1:{port} ")
        assert "listen 8080;" in conf, f"{NGINX_CONF} no longer listens on 8080"
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        temp = "".join(
            f"    {kind}_temp_path {root}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = conf.replace("http {\n", "http {\n" + temp, 1)
        (root / "nginx.conf").write_text(conf)
        self.log = root / "nginx.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NginxBalancer:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    "nginx",
                    "-p",
                    str(self.root),
                    "-c",
                    "nginx.conf",
                    "-g",
                    f"daemon off; pid {self.root}/nginx.pid; error_log stderr;",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError(f"nginx exited:\n{self.log.read_text(errors='replace')}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise EngineError(f"nginx did not start:\n{self.log.read_text(errors='replace')}")

    def requests_to(self, port: int) -> int:
        """How many requests the access log shows for the replica on ``port``."""
        return self.log.read_text(errors="replace").count(f"upstream=127.0.0.1:{port} ")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
