"""The token cache on its own: private files, the keyring notice said once, the lock."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gatehouse.client import CacheLocked, StoredSession, TokenCache

URL = "https://gatehouse.example.com"


def session(server: str = URL, **changes: object) -> StoredSession:
    values: dict[str, object] = {
        "server": server,
        "method": "oidc",
        "access_token": "header.payload.sig",
        "access_expires_at": time.time() + 600,
        "refresh_token": "rt-1",
        "username": "alice",
    }
    values.update(changes)
    return StoredSession(**values)  # type: ignore[arg-type]


def test_file_store_is_private_and_round_trips(tmp_path: Path) -> None:
    notices: list[str] = []
    cache = TokenCache(tmp_path, store="file", notify=notices.append)
    cache.save(session())
    path = cache.path_for(URL)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = cache.load(URL)
    assert loaded is not None and loaded.refresh_token == "rt-1" and loaded.username == "alice"
    assert "header.payload.sig" not in repr(loaded)


def test_file_store_notice_is_said_once(tmp_path: Path) -> None:
    notices: list[str] = []
    TokenCache(tmp_path, store="file", notify=notices.append).save(session())
    TokenCache(tmp_path, store="file", notify=notices.append).save(session("https://b.example"))
    assert len(notices) == 1 and "No system keyring is available" in notices[0]


def test_sessions_lists_each_server_and_delete_forgets(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path, store="file", notify=lambda _m: None)
    cache.save(session())
    cache.save(session("https://b.example"))
    assert [s.server for s in cache.sessions()] == ["https://b.example", URL]
    assert cache.delete(URL) is True
    assert cache.load(URL) is None and cache.delete(URL) is False


def test_a_corrupt_session_file_reads_as_signed_out(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path, store="file", notify=lambda _m: None)
    cache.save(session())
    cache.path_for(URL).write_text("{not json")
    assert cache.load(URL) is None


def test_lock_excludes_other_holders_until_released(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path, store="file", lock_timeout=0.2)
    other = TokenCache(tmp_path, store="file", lock_timeout=5)
    order: list[str] = []
    with cache.lock(URL):
        with pytest.raises(CacheLocked):
            with TokenCache(tmp_path, store="file", lock_timeout=0.1).lock(URL):
                pass
        waiter = threading.Thread(target=lambda: (other.lock(URL).__enter__(), order.append("b")))
        waiter.start()
        time.sleep(0.2)
        order.append("a")
    waiter.join(5)
    assert order == ["a", "b"]


#: One writer process: wait for the start signal, then N times read, change and save the
#: session under the lock, with a pause between read and save that loses writes without it.
WRITER = """
import sys, time
from pathlib import Path
from gatehouse.client import TokenCache
from gatehouse.client._cache import updated

directory, server, tag, rounds = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
cache = TokenCache(directory, store="file", notify=lambda _m: None, lock_timeout=30)
while not (directory / "go").exists():
    time.sleep(0.005)
for i in range(rounds):
    with cache.lock(server):
        current = cache.load(server)
        time.sleep(0.002)
        cache.save(updated(current, scopes=(*current.scopes, f"{tag}{i}")))
"""


def test_two_processes_updating_the_cache_under_the_lock_lose_no_write(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path, store="file", notify=lambda _m: None)
    cache.save(session(scopes=()))
    rounds = 40
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), URL, tag, str(rounds)])
        for tag in ("a", "b")
    ]
    (tmp_path / "go").touch()
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    loaded = cache.load(URL)
    assert loaded is not None
    assert sorted(loaded.scopes) == sorted(f"{t}{i}" for t in "ab" for i in range(rounds))
    assert stat.S_IMODE(cache.path_for(URL).stat().st_mode) == 0o600
    with cache.lock(URL):
        assert stat.S_IMODE(cache.path_for(URL).with_suffix(".lock").stat().st_mode) == 0o600
