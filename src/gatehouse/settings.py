"""Every ``GATEHOUSE_*`` setting, in one place.

Settings come from the environment (pydantic-settings). Gatehouse starts with no setting at all:
data lives in ``./.gatehouse`` and the secret key is generated into a 0600 file there.
Unsafe combinations (an http public URL that is not loopback without
``GATEHOUSE_ALLOW_INSECURE_HTTP``) are refused at start-up.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """A setting is unsafe or inconsistent; the message says which and why."""


def is_loopback_host(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost`` — the only hosts where http is tolerated."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Gatehouse configuration. Each field maps to ``GATEHOUSE_<FIELD>``."""

    # An empty variable counts as unset: container platforms write ``NAME=`` for an optional
    # value left blank (Compose's ``${NAME:-}``), and an empty join token must not be sent.
    model_config = SettingsConfigDict(
        env_prefix="GATEHOUSE_", extra="ignore", env_ignore_empty=True
    )

    data_dir: Path = Field(
        default=Path(".gatehouse"),
        description="Directory for the SQLite database, the generated key file and "
        "the initial admin password file.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: sqlite file gatehouse.db in the data dir. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="External base URL; redirect URIs and token audiences are built from it.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Key that encrypts secrets at rest and signs CSRF tokens. Default: a random "
        "key generated once into DATA_DIR/secret.key (mode 0600).",
    )
    old_secret_keys: str = Field(
        default="",
        description="During a key rotation: earlier secret keys (comma-separated) that still "
        "decrypt but never encrypt. Remove them once `gatehouse keys rotate --finish` succeeds.",
    )
    allow_insecure_http: bool = Field(
        default=False,
        description="Allow http:// for the public URL and the IdP, only on loopback addresses "
        "(development and tests).",
    )
    role: Literal["console", "environment"] = Field(
        default="console", description="console (source of truth) or environment (syncs)."
    )
    host: str = Field(default="127.0.0.1", description="Address `gatehouse serve` binds to.")
    port: int = Field(default=8000, description="Port `gatehouse serve` listens on.")
    session_idle_minutes: int = Field(
        default=30, ge=1, description="A console session ends after this much inactivity."
    )
    session_max_hours: float = Field(
        default=12, gt=0, description="Absolute lifetime of a console session."
    )
    access_token_minutes: int = Field(
        default=10, ge=1, le=60, description="Lifetime of Gatehouse access tokens (bearer)."
    )
    lockout_attempts: int = Field(
        default=5, ge=1, description="Failed password attempts per account before lockout."
    )
    lockout_minutes: int = Field(
        default=5, ge=1, description="Window (and lockout duration) for failed attempts."
    )
    ip_throttle_attempts: int = Field(
        default=20, ge=1, description="Failed password attempts per client IP within the window."
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated proxy addresses whose X-Forwarded-For is trusted.",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    console_url: str | None = Field(
        default=None, description="Environment role: the console to sync from."
    )
    join_token: str | None = Field(
        default=None, description="Environment role: one-time join token from the console."
    )
    redis_url: str | None = Field(
        default=None, description="Optional Redis for shared rate limits across replicas."
    )
    sync_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Environment role: seconds between two pulls of the console's change feed.",
    )
    component_versions: str = Field(
        default="",
        description="Environment role: the platform component versions this environment runs, "
        "reported to the console, e.g. 'platform_server=11.18.1,service_studio=11.53.13'.",
    )

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def check(self) -> None:
        """Refuse unsafe defaults; called once at start-up."""
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(
                f"GATEHOUSE_PUBLIC_URL must be an http(s) URL, not {self.public_url!r}"
            )
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise SettingsError(
                "GATEHOUSE_PUBLIC_URL uses http on a non-loopback host; use https "
                "(http is only allowed on 127.0.0.1/localhost)."
            )
        self._check_extras()

    def _check_extras(self) -> None:
        """A setting whose client library is an extra that is not installed stops the start
        with the extra to install, not a ModuleNotFoundError trace at the first request."""
        if self.redis_url:
            try:
                import redis  # noqa: F401 - only whether the extra is installed
            except ImportError as exc:
                raise SettingsError(
                    "GATEHOUSE_REDIS_URL is set but the Redis client is not installed: "
                    "pip install 'gatehouse-sso[redis]'."
                ) from exc
        url = self.resolved_database_url
        if url.startswith("sqlite"):
            return
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            make_url(url).get_dialect().import_dbapi()
        except (ArgumentError, NoSuchModuleError):
            # never echo the URL: it may hold the database password
            raise SettingsError(
                "GATEHOUSE_DATABASE_URL is not a database URL SQLAlchemy knows, e.g. "
                "postgresql+psycopg://user:password@host/db."
            ) from None
        except ImportError as exc:
            hint = (
                "pip install 'gatehouse-sso[postgres]' and use postgresql+psycopg://…"
                if url.startswith("postgres")
                else "install that database's driver"
            )
            raise SettingsError(
                f"GATEHOUSE_DATABASE_URL needs the database driver {exc.name!r}, which is not "
                f"installed: {hint}."
            ) from exc

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gatehouse.db').resolve()}"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @cached_property
    def resolved_secret_key(self) -> bytes:
        """The active secret key bytes; generated into DATA_DIR/secret.key (0600) when unset."""
        return self.keyring()[0]

    def keyring(self, *, create: bool = True) -> tuple[bytes, ...]:
        """The active key first, then the keys that only decrypt (a rotation in progress).

        With ``GATEHOUSE_SECRET_KEY``: that key, then ``GATEHOUSE_OLD_SECRET_KEYS``. Otherwise the
        key file (created 0600 on first use): its first line is the active key, further lines
        are old keys that ``gatehouse keys rotate`` keeps until it finishes.

        ``create=False`` (a running server re-reading the file): a missing or empty file gives
        ``()`` — never a fresh key that would orphan every ciphertext.
        """
        old = tuple(k.strip().encode() for k in self.old_secret_keys.split(",") if k.strip())
        if self.secret_key:
            return (self.secret_key.encode(), *old)
        path = self.key_file
        if not create and not path.exists():
            return ()
        if not path.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first: use theirs
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(48) + "\n")
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not lines and not create:
            return ()
        if not lines:
            raise SettingsError(f"The key file {path} is empty; restore it from your backup.")
        return (*(line.encode() for line in lines), *old)


def load_settings(**overrides: object) -> Settings:
    settings = Settings(**overrides)  # type: ignore[arg-type]
    settings.check()
    return settings
