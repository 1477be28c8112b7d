"""SQLAlchemy 2 models — every table Gatehouse keeps.

Times are timezone-aware UTC. Secrets are stored encrypted (``*_enc`` columns, see
``gatehouse.domain.crypto``) or as SHA-256 hashes (``*_hash``), never in clear.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime that always comes back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """An IT user. ``username_key`` is the NFKC-normalised, casefolded username (unique)."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("idp_issuer", "idp_subject", name="uq_users_idp_binding"),
        Index("ix_users_email_key", "email_key"),
        # Orders of the users page (migration 0005; its prefix indexes are dialect-specific).
        Index("ix_users_created_at_id", "created_at", "id"),
        Index("ix_users_last_sign_in_at_id", "last_sign_in_at", "id"),
        Index("ix_users_email_key_id", "email_key", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150))
    username_key: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    email_key: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    local_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    idp_issuer: Mapped[str | None] = mapped_column(String(500))
    idp_subject: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_sign_in_at: Mapped[datetime | None]
    revision: Mapped[int] = mapped_column(BigInteger, default=0, index=True)

    assignments: Mapped[list[RoleAssignment]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    builtin: Mapped[bool] = mapped_column(Boolean, default=True)


def scope_key_for(environment_id: int | None) -> str:
    """``RoleAssignment.scope_key``: "global", or "env:<id>" for one environment."""
    return f"env:{environment_id}" if environment_id is not None else "global"


class RoleAssignment(Base):
    """A role for a user, globally (environment_id NULL) or in one environment."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        UniqueConstraint("user_id", "role_id", "scope_key", name="uq_role_assignment"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"))
    environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    #: "global" or "env:<id>" — NULLs never collide in a unique constraint, this does.
    scope_key: Mapped[str] = mapped_column(String(32), default="global")
    source: Mapped[str] = mapped_column(String(16), default="manual")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="assignments")
    role: Mapped[Role] = relationship(lazy="joined")
    environment: Mapped[Environment | None] = relationship(lazy="joined")

    @classmethod
    def grant(
        cls, role: Role, environment: Environment | None, *, source: str = "manual"
    ) -> RoleAssignment:
        """``role`` everywhere (``environment`` None) or in one environment."""
        environment_id = environment.id if environment is not None else None
        return cls(
            role=role,
            role_id=role.id,
            environment=environment,
            environment_id=environment_id,
            scope_key=scope_key_for(environment_id),
            source=source,
        )


class Environment(Base):
    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    base_url: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16), default="dev")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    gatehouse_version: Mapped[str | None] = mapped_column(String(32))
    protocol_version: Mapped[int | None] = mapped_column(Integer)
    health: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_seen_at: Mapped[datetime | None]
    synced_revision: Mapped[int] = mapped_column(BigInteger, default=0)
    join_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    join_token_expires_at: Mapped[datetime | None]
    credential_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IdPConfig(Base):
    """One version of the IdP configuration. Rows are never updated: each change adds one."""

    __tablename__ = "idp_configs"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(150))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    client_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    private_key_jwk_enc: Mapped[bytes | None] = mapped_column(LargeBinary)


class IdPState(Base):
    """Singleton row (id=1): current configuration version, activation and last test."""

    __tablename__ = "idp_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    current_version: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_by: Mapped[str | None] = mapped_column(String(150))
    last_test_version: Mapped[int | None] = mapped_column(Integer)
    last_test_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    last_test_at: Mapped[datetime | None]
    last_test_report: Mapped[list[Any]] = mapped_column(default=list)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class Session(Base):
    """A console session. Only the SHA-256 of the session id is stored."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))  # password | oidc
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    csrf_secret: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    idp_issuer: Mapped[str | None] = mapped_column(String(500))
    idp_subject: Mapped[str | None] = mapped_column(String(255), index=True)
    idp_sid: Mapped[str | None] = mapped_column(String(255), index=True)
    idp_config_version: Mapped[int | None] = mapped_column(Integer)
    id_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: the ID token's claims as the validator verified them (JSON, encrypted)
    id_token_claims_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_token_expires_at: Mapped[datetime | None]
    refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(64))


class OIDCFlow(Base):
    """An authorization request in flight, bound to the browser that started it. One-time."""

    __tablename__ = "oidc_flows"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16), default="login")  # login | test
    data_enc: Mapped[bytes] = mapped_column(LargeBinary)
    config_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SeenJTI(Base):
    """Replay protection for logout tokens (and any other one-time JWT)."""

    __tablename__ = "seen_jtis"

    jti_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuditEvent(Base):
    """Append-only: no code path updates or deletes these rows."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        # the console's home page (migration 0011, domain/dashboard.py)
        Index("ix_audit_events_action_outcome_at", "action", "outcome", "at", "reason"),
        Index("ix_audit_events_outcome_at", "outcome", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(150), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LoginAttempt(Base):
    """Password attempts, for lockout per account and throttling per client IP."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_user", "username_key", "at"),
        Index("ix_login_attempts_ip", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    username_key: Mapped[str] = mapped_column(String(150))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    success: Mapped[bool] = mapped_column(Boolean, default=False)


class RateLimitBucket(Base):
    """Fixed-window counters shared by every replica (when Redis is not configured)."""

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer, default=0)


class ApiToken(Base):
    """A named automation token. Only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class SigningKey(Base):
    """Gatehouse's own token-signing keys; the private half is encrypted at rest."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Tokens are signed with the newest active key; retired keys still verify until dropped.
    retired_at: Mapped[datetime | None]


class App(Base):
    """A custom app that uses Gatehouse as its user provider."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    allowed_origins: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prerequisite(Base):
    """Minimum component version an environment must report before OIDC can be activated."""

    __tablename__ = "prerequisites"

    component: Mapped[str] = mapped_column(String(64), primary_key=True)
    min_version: Mapped[str] = mapped_column(String(32))


class ChangeLog(Base):
    """Monotonic change feed for environment sync: one row per changed entity."""

    __tablename__ = "change_log"

    revision: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


#: The keys of ``key_values`` in use (one row each).
INITIAL_ADMIN_KEY = "initial_admin"
#: Environment role: the console URL and this server's credential (encrypted, base64).
SYNC_CREDENTIAL_KEY = "sync.credential"
#: Environment role: revision, IdP fingerprint, last success and last error of the sync.
SYNC_STATE_KEY = "sync.state"


class KeyValue(Base):
    """Small instance state (environment role: console URL, credential, sync revision …)."""

    __tablename__ = "key_values"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
