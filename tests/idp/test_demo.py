"""``make demo`` (``tests/idp/demo.py``): a chosen port, a clear refusal of a busy one before
anything is printed, and no temporary folders left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from idp.fixture import IDP_DIR, free_port
from idp.plugin import require_idp

pytestmark = pytest.mark.idp
ROOT = IDP_DIR.parents[1]
DEMO = [sys.executable, str(IDP_DIR / "demo.py")]
#: ``make -n`` with the install steps taken as done
MAKE_DRY_RUN = [
    "make",
    "-n",
    "-o",
    ".venv/.installed-test",
    "-o",
    "tests/idp/node_modules/.installed",
]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env["TMPDIR"] = str(tmp)
    return env


def test_a_busy_port_is_refused_before_any_credential_is_printed(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        run = subprocess.run(
            [*DEMO, "--port", str(port)],
            env=_env(tmp),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 1
    assert f"Port {port} is in use" in run.stderr and f"make demo PORT={port + 10}" in run.stderr
    assert run.stdout == "" and "admin /" not in run.stderr  # no credentials, nothing started
    assert list(tmp.iterdir()) == []


def test_the_demo_serves_on_the_chosen_port_and_cleans_up_on_ctrl_c(tmp_path: Path) -> None:
    require_idp()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    demo = subprocess.Popen(
        DEMO,
        env={**_env(tmp), "GATEHOUSE_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C to stop."):
                break
        shown = "".join(lines)
        assert f"Gatehouse demo: http://127.0.0.1:{port}" in shown, shown
        assert any(p.name.startswith("gatehouse-demo-") for p in tmp.iterdir())
        login = httpx.get(f"http://127.0.0.1:{port}/login", trust_env=False)
        assert login.status_code == 200 and "Sign in with Demo IdP" in login.text
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, rest
    assert "Demo stopped; its temporary data is removed." in rest
    assert list(tmp.iterdir()) == []  # the demo's and the IdP's folders are gone


def test_make_demo_passes_the_port_on() -> None:
    dry = subprocess.run(
        [*MAKE_DRY_RUN, "demo", "PORT=8010"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert dry.returncode == 0, dry.stderr
    assert "tests/idp/demo.py --port 8010" in dry.stdout
