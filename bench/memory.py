"""(e) Idle memory (RSS) of one replica, after start and after some traffic.

    python bench/memory.py

Baseline, in the same run: a bare uvicorn + Starlette "hello" app (the smallest ASGI server
Gatehouse could be), started the same way and given the same amount of traffic. Measured: one
bootstrapped `gatehouse serve` (SQLite), idle after start, then idle again after ~10 s of load
on ``/healthz``, ``/login``, ``GET /api/v1/me`` and ``GET /api/v1/users`` (bearer). RSS is
read from ``/proc/<pid>/status`` after a second of quiet. Printed: MB and the ratio to the
baseline at the same point.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _common import admin_token, free_port, gatehouse_server, wrk

HELLO_APP = textwrap.dedent(
    """
    import sys
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(request):
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/healthz", hello)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


def rss_mb(pid: int) -> float:
    time.sleep(1.0)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@contextmanager
def hello_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", HELLO_APP, str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    began = time.perf_counter()
    with hello_server() as (url, pid):
        base_start = rss_mb(pid)
        for _ in range(4):
            wrk(f"{url}/healthz", seconds=2)
        base_traffic = rss_mb(pid)
    pids: list[int] = []
    with gatehouse_server(pid=pids) as url:
        gh_start = rss_mb(pids[0])
        header = f"Authorization: Bearer {admin_token(url)}"
        wrk(f"{url}/healthz", seconds=2)
        wrk(f"{url}/login", seconds=2)
        wrk(f"{url}/api/v1/me", seconds=3, header=header)
        wrk(f"{url}/api/v1/users", seconds=3, header=header)
        gh_traffic = rss_mb(pids[0])
    print("idle RSS, MB                 after start   after traffic")
    print(f"  uvicorn+Starlette hello   {base_start:11.1f} {base_traffic:15.1f}")
    print(f"  gatehouse serve           {gh_start:11.1f} {gh_traffic:15.1f}")
    print(
        f"ratio gatehouse / baseline  {gh_start / base_start:11.2f} "
        f"{gh_traffic / base_traffic:15.2f}"
    )
    print(
        f"growth under traffic: baseline +{base_traffic - base_start:.1f} MB, "
        f"gatehouse +{gh_traffic - gh_start:.1f} MB ({time.perf_counter() - began:.0f} s)"
    )


if __name__ == "__main__":
    main()
