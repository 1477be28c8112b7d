"""Fault-test fixtures: a throwaway PostgreSQL server of our own that a test may stop and start.

Never the machine's shared cluster: ``initdb`` a temp directory on a free port, run as the
``postgres`` user when we are root (initdb refuses root), and always stop and delete it.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_fault_server import OwnPostgres

from idp.fixture import free_port


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are needed for the fault tests", pytrace=False)
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
    root = Path(tempfile.mkdtemp(prefix="gatehouse-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = OwnPostgres(bindir, root, free_port())
    try:
        server.init()
        yield server
    finally:
        server.stop("immediate")
        deadline = time.monotonic() + 10
        while server.is_up() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
