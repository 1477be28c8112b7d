"""The token cache: one session per server, secrets in the OS keyring or a 0600 file.

Layout under the user config directory (``GATEHOUSE_CONFIG_DIR`` overrides it)::

    sessions/<key>.json   the session of one server (mode 0600); its secrets too when no
                          keyring works
    sessions/<key>.lock   a file lock (``filelock``, mode 0600): held while a command refreshes,
                          so two commands never both spend the same (rotating) refresh token

``<key>`` is a hash of the server URL. Secrets (the Gatehouse token and the IdP refresh token)
go to the keyring (service ``gatehouse``, user = server URL) when a keyring backend works; when
none does they stay in the JSON file, and the user is told so once. ``GATEHOUSE_TOKEN_STORE``
= ``keyring`` | ``file`` | ``auto`` (default) forces the choice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import platformdirs
from filelock import FileLock, Timeout

from ._errors import CacheLocked

log = logging.getLogger("gatehouse.client")

KEYRING_SERVICE = "gatehouse"
_SECRET_FIELDS = ("access_token", "refresh_token")
_NOTICE_MARKER = ".file-store-notice-shown"

Method = Literal["oidc", "local"]


@dataclass(frozen=True)
class StoredSession:
    """What a tool keeps between commands for one server."""

    server: str
    method: Method
    access_token: str = field(repr=False)
    access_expires_at: float
    username: str | None = None
    user_id: int | None = None
    issuer: str | None = None
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    refresh_token: str | None = field(default=None, repr=False)
    #: iss, sub, aud, azp, auth_time, nonce of the last ID token (OIDC Core 12.2 checks)
    id_claims: dict[str, Any] = field(default_factory=dict)
    signed_in_at: float = field(default_factory=time.time)

    def valid_for(self, seconds: float, now: float | None = None) -> bool:
        return self.access_expires_at - (time.time() if now is None else now) > seconds

    @property
    def renewable(self) -> bool:
        return self.method == "oidc" and bool(self.refresh_token)

    def to_json(self, *, with_secrets: bool) -> dict[str, Any]:
        data = asdict(self)
        data["scopes"] = list(self.scopes)
        if not with_secrets:
            for name in _SECRET_FIELDS:
                data.pop(name)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], secrets: dict[str, Any]) -> StoredSession:
        merged = {**data, **{k: secrets.get(k) for k in _SECRET_FIELDS}}
        merged.pop("store", None)
        merged["scopes"] = tuple(merged.get("scopes") or ())
        merged["access_token"] = merged.get("access_token") or ""
        return cls(**{k: v for k, v in merged.items() if k in cls.__dataclass_fields__})


def default_config_dir() -> Path:
    override = os.environ.get("GATEHOUSE_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("gatehouse"))


def _server_key(server: str) -> str:
    return hashlib.sha256(server.encode()).hexdigest()[:24]


def _keyring_works() -> bool:
    """Whether a real keyring backend answers (not the 'fail' or an empty chainer one)."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return False
        keyring.get_password(KEYRING_SERVICE, "__gatehouse_probe__")
    except Exception as exc:
        log.debug("keyring unusable: %s", type(exc).__name__)
        return False
    return True


def _write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 from the first byte (never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class TokenCache:
    """Sessions per server. Safe to share between processes (see :meth:`lock`)."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        store: Literal["auto", "keyring", "file"] | None = None,
        notify: Callable[[str], None] | None = None,
        lock_timeout: float = 60.0,
    ) -> None:
        self.directory = directory or default_config_dir()
        self.sessions_dir = self.directory / "sessions"
        choice = store or os.environ.get("GATEHOUSE_TOKEN_STORE", "auto")
        if choice not in ("auto", "keyring", "file"):
            choice = "auto"
        self._choice = choice
        self._use_keyring: bool | None = None
        self._notify = notify or (lambda message: log.warning("%s", message))
        self.lock_timeout = lock_timeout

    # -- where secrets go ---------------------------------------------------------------------
    @property
    def uses_keyring(self) -> bool:
        if self._use_keyring is None:
            self._use_keyring = self._choice == "keyring" or (
                self._choice == "auto" and _keyring_works()
            )
        return self._use_keyring

    def _ensure_dir(self) -> None:
        self.sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):
            os.chmod(self.directory, 0o700)
            os.chmod(self.sessions_dir, 0o700)

    def path_for(self, server: str) -> Path:
        return self.sessions_dir / f"{_server_key(server)}.json"

    # -- read / write -----------------------------------------------------------------------
    def load(self, server: str) -> StoredSession | None:
        path = self.path_for(server)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            log.warning("ignoring an unreadable session file %s", path)
            return None
        if not isinstance(data, dict) or data.get("server") != server:
            return None
        secrets = data
        if data.get("store") == "keyring":
            secrets = self._keyring_get(server)
            if not secrets.get("access_token"):
                return None
        return StoredSession.from_json(data, secrets)

    def save(self, session: StoredSession) -> None:
        self._ensure_dir()
        path = self.path_for(session.server)
        in_keyring = self.uses_keyring and self._keyring_set(session)
        data = session.to_json(with_secrets=not in_keyring)
        data["store"] = "keyring" if in_keyring else "file"
        if not in_keyring:
            self._tell_once_about_file_store()
        _write_private(path, json.dumps(data, indent=2, sort_keys=True))

    def delete(self, server: str) -> bool:
        path = self.path_for(server)
        existed = path.exists()
        if self.uses_keyring:
            self._keyring_delete(server)
        path.unlink(missing_ok=True)
        return existed

    def sessions(self) -> list[StoredSession]:
        """Every stored session, by server URL."""
        if not self.sessions_dir.is_dir():
            return []
        found = []
        for path in sorted(self.sessions_dir.glob("*.json")):
            try:
                server = json.loads(path.read_text(encoding="utf-8")).get("server")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(server, str):
                session = self.load(server)
                if session is not None:
                    found.append(session)
        return sorted(found, key=lambda s: s.server)

    # -- locking ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, server: str) -> Iterator[None]:
        """Exclusive, cross-process lock for one server's session, waiting up to
        ``lock_timeout`` seconds (``filelock``: ``flock`` on POSIX, ``msvcrt`` on Windows)."""
        self._ensure_dir()
        lock = FileLock(
            self.path_for(server).with_suffix(".lock"), timeout=self.lock_timeout, mode=0o600
        )
        try:
            lock.acquire()
        except Timeout:
            raise CacheLocked(_locked_message(server)) from None
        try:
            yield
        finally:
            lock.release()

    # -- keyring ----------------------------------------------------------------------------
    def _keyring_set(self, session: StoredSession) -> bool:
        import keyring

        payload = json.dumps({k: getattr(session, k) for k in _SECRET_FIELDS})
        try:
            keyring.set_password(KEYRING_SERVICE, session.server, payload)
        except Exception as exc:
            log.debug("keyring write failed: %s", type(exc).__name__)
            self._use_keyring = False
            return False
        return True

    def _keyring_get(self, server: str) -> dict[str, Any]:
        import keyring

        try:
            raw = keyring.get_password(KEYRING_SERVICE, server)
        except Exception as exc:
            log.debug("keyring read failed: %s", type(exc).__name__)
            return {}
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def _keyring_delete(self, server: str) -> None:
        import keyring
        from keyring.errors import PasswordDeleteError

        try:
            keyring.delete_password(KEYRING_SERVICE, server)
        except PasswordDeleteError:
            pass  # nothing stored: already forgotten
        except Exception as exc:
            log.debug("keyring delete failed: %s", type(exc).__name__)

    def _tell_once_about_file_store(self) -> None:
        marker = self.directory / _NOTICE_MARKER
        if marker.exists():
            return
        self._notify(
            "No system keyring is available, so your Gatehouse sign-in is kept in "
            f"{self.sessions_dir} (files only you can read, mode 0600)."
        )
        _write_private(marker, "shown\n")


def updated(session: StoredSession, **changes: Any) -> StoredSession:
    return replace(session, **changes)


def _locked_message(server: str) -> str:
    return (
        f"Another gatehouse command has been renewing the session for {server} for too long; "
        "try again."
    )
