"""Shared benchmark plumbing: a real `gatehouse serve` process and a wrk load on loopback.

Benchmarks print ratios against a baseline measured in the same run: absolute numbers on a
shared 2-core VM are noise, ratios are not.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ADMIN = "bench-admin"
ADMIN_PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gatehouse_server(
    *,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    pid: list[int] | None = None,
) -> Iterator[str]:
    """A bootstrapped `gatehouse serve` (one worker) on ``port`` (default: a free one); yields
    its URL. ``pid``, when given, receives the server's process id."""
    data = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        {
            "GATEHOUSE_DATA_DIR": str(data),
            "GATEHOUSE_PUBLIC_URL": url,
            "GATEHOUSE_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
    )
    if database_url:
        env["GATEHOUSE_DATABASE_URL"] = database_url
    cli = [sys.executable, "-m", "gatehouse.cli"]
    subprocess.run(
        [*cli, "admin", "bootstrap", "--username", ADMIN, "--password-stdin"],
        input=ADMIN_PASSWORD + "\n",
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    proc = subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if pid is not None:
        pid.append(proc.pid)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
            if proc.poll() is not None:
                stderr = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"gatehouse serve exited: {stderr[-2000:]}")
        else:
            raise RuntimeError("gatehouse serve did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(data, ignore_errors=True)


def admin_token(url: str) -> str:
    r = httpx.post(f"{url}/api/v1/auth/local", json={"username": ADMIN, "password": ADMIN_PASSWORD})
    r.raise_for_status()
    return str(r.json()["access_token"])


def wrk(url: str, *, seconds: int = 8, connections: int = 16, header: str | None = None) -> float:
    """Requests per second that wrk (one thread, loopback) sustains against ``url``."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if header:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} error responses from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


POSTGRES_ADMIN_URL = os.environ.get(
    "GATEHOUSE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def throwaway_postgres(prefix: str = "gatehouse_bench") -> Iterator[str]:
    """A fresh PostgreSQL database next to ``GATEHOUSE_TEST_POSTGRES_URL``; dropped afterwards."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from helpers import scratch_postgres

    with scratch_postgres(prefix, POSTGRES_ADMIN_URL) as url:
        yield url


def p50_ms(
    client: httpx.Client, url: str, *, n: int, headers: dict[str, str] | None = None
) -> float:
    """Median latency in ms of ``n`` sequential GETs on one keep-alive connection."""
    import statistics

    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append(time.perf_counter() - start)
        response.raise_for_status()
    return statistics.median(times) * 1000
