"""Several real ``gatehouse serve`` processes on one database, behind a tiny load balancer.

Import as ``from replicas import ...`` (``tests/integration`` is on ``sys.path`` when its tests
run). A :class:`Replica` is a subprocess with its own data directory and port; all replicas of
a test share the database URL, ``GATEHOUSE_SECRET_KEY`` and ``GATEHOUSE_PUBLIC_URL`` — the
address of a :class:`RoundRobin` TCP proxy standing in for the production load balancer (the
IdP's redirects and back-channel logout requests go through it). Tests that must pick a replica
talk to ``replica.url`` directly with the same cookies, as a load balancer without stickiness
would send a browser's next request anywhere.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx

from idp.fixture import free_port

SECRET_KEY = "replica-shared-secret-key-" + "r" * 32


class RoundRobin:
    """A TCP proxy on a free loopback port: each new connection goes to the next backend."""

    def __init__(self, backends: Sequence[int]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cycle = itertools.cycle(backends)
        self.connections: Counter[int] = Counter()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RoundRobin:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the round-robin proxy did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = next(self._cycle)
        self.connections[port] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class Replica:
    """One ``gatehouse serve`` subprocess; ``start``/``stop``/``restart`` as an operator would."""

    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = root / name
        self.log = root / f"{name}.log"
        self.env = {**env, "GATEHOUSE_DATA_DIR": str(self.data_dir)}
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process without waiting (so several replicas can start at once)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*gatehouse_cli(), "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"replica {self.name} did not become ready:\n{self.log_text()}")

    def start(self) -> Replica:
        self.launch()
        self.wait_ready()
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def gatehouse_cli() -> list[str]:
    return [sys.executable, "-m", "gatehouse.cli"]


def replica_env(database_url: str, public_url: str, **extra: str) -> dict[str, str]:
    """The environment every replica of one deployment shares."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        {
            "GATEHOUSE_DATABASE_URL": database_url,
            "GATEHOUSE_SECRET_KEY": SECRET_KEY,
            "GATEHOUSE_PUBLIC_URL": public_url,
            "GATEHOUSE_ALLOW_INSECURE_HTTP": "true",
            "GATEHOUSE_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.Popen[str]:
    """Start a ``gatehouse`` command (not waiting for it)."""
    return subprocess.Popen(
        [*gatehouse_cli(), *args],
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
