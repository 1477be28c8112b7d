"""The token cache on its own: private files, the keyring notice said once, the lock."""

from __future__ import annotations

import stat
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
