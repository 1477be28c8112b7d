"""API tokens for automation: named, scoped, expiring, revocable bearer secrets.

Format: ``gth_`` + 36 random base62 characters + a 6-character base62 CRC-32 of those 36
(the shape of GitHub's tokens), 46 characters in all. The fixed prefix and the checksum let
secret scanners match a leaked token with almost no false positives, and let us refuse a typo
or a truncated paste without touching the database. Only the SHA-256 of the whole secret is
stored; the secret is shown once, at creation.

Scopes: ``read`` (always included), ``write`` (any unsafe method), ``admin`` (administrator
routes; only for users who are administrators). A token never carries more than its creator
had when creating it, and the owner's current rights still apply at each use.

:class:`ApiTokenVerifier` runs on every request that carries such a token: a validated lookup
is cached for ``ttl`` seconds (3 s), so a revocation on any replica takes effect within
seconds without a database round trip per request; ``last_used_at`` is written at most once
a minute per token.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gatehouse.domain import audit
from gatehouse.domain.audit import Actor
from gatehouse.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from gatehouse.store.models import ApiToken, utcnow

log = logging.getLogger("gatehouse.api_tokens")

TOKEN_PREFIX = "gth_"  # noqa: S105 - the public prefix secret scanners match
SCOPES = ("read", "write", "admin")
MAX_LIFETIME = timedelta(days=365)
DEFAULT_LIFETIME_DAYS = 30
MAX_ACTIVE_PER_USER = 50
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_CHARS = 36
_CHECKSUM_CHARS = 6
TOKEN_LENGTH = len(TOKEN_PREFIX) + _RANDOM_CHARS + _CHECKSUM_CHARS
_SHOWN_PREFIX = len(TOKEN_PREFIX) + 8  # "gth_AbCd1234": enough to tell tokens apart in a list


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECKSUM_CHARS)


def generate_secret() -> str:
    """A new secret: ``gth_`` + 36 random base62 characters (~214 bits) + checksum."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))
    return f"{TOKEN_PREFIX}{body}{_checksum(body)}"


def is_well_formed(secret: str) -> bool:
    """Prefix, length, alphabet and checksum — checked before any lookup."""
    if len(secret) != TOKEN_LENGTH or not secret.startswith(TOKEN_PREFIX):
        return False
    rest = secret[len(TOKEN_PREFIX) :]
    if any(c not in _ALPHABET for c in rest):
        return False
    body, check = rest[:_RANDOM_CHARS], rest[_RANDOM_CHARS:]
    return secrets.compare_digest(_checksum(body), check)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


# -- lifecycle ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewToken:
    """A created token and its secret — the only time the secret exists outside the caller."""

    token: ApiToken
    secret: str


def normalise_scopes(requested: Iterable[str], *, allowed: frozenset[str]) -> list[str]:
    """Validate requested scopes against what the creator holds; ``read`` is always included."""
    wanted = set(requested)
    unknown = wanted - set(SCOPES)
    if unknown:
        raise InvalidInput(
            f"Unknown scopes {sorted(unknown)}; use read, write and admin.", code="invalid_scope"
        )
    wanted.add("read")
    excess = wanted - allowed
    if excess:
        raise Forbidden(
            f"You cannot grant {sorted(excess)}: a token never holds more than you do.",
            code="insufficient_scope",
        )
    return [s for s in SCOPES if s in wanted]


def _validate_name(raw: str) -> str:
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name or len(name) > 100 or any(unicodedata.category(c)[0] == "C" for c in name):
        raise InvalidInput(
            "The token name must be 1 to 100 printable characters.", code="invalid_name"
        )
    return name


def _expiry(expires_at: datetime | None, expires_in_days: int | None, now: datetime) -> datetime:
    if expires_at is not None and expires_in_days is not None:
        raise InvalidInput("Give expires_at or expires_in_days, not both.", code="invalid_expiry")
    if expires_at is None:
        days = DEFAULT_LIFETIME_DAYS if expires_in_days is None else expires_in_days
        expires_at = now + timedelta(days=days)
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone (e.g. Z).", code="invalid_expiry")
    if expires_at <= now:
        raise InvalidInput("The expiry must lie in the future.", code="invalid_expiry")
    if expires_at - now > MAX_LIFETIME + timedelta(minutes=5):
        raise InvalidInput("A token lives at most one year.", code="invalid_expiry")
    return expires_at


def is_active(token: ApiToken, now: datetime | None = None) -> bool:
    return token.revoked_at is None and token.expires_at > (now or utcnow())


def create_token(
    db: Session,
    actor: Actor,
    *,
    user_id: int,
    name: str,
    scopes: Iterable[str],
    allowed_scopes: frozenset[str],
    expires_at: datetime | None = None,
    expires_in_days: int | None = None,
) -> NewToken:
    """Create a token for ``user_id``; ``allowed_scopes`` is what the creator holds right now."""
    now = utcnow()
    clean_name = _validate_name(name)
    granted = normalise_scopes(scopes, allowed=allowed_scopes)
    expiry = _expiry(expires_at, expires_in_days, now)
    active = [t for t in list_tokens(db, user_id=user_id) if is_active(t, now)]
    if len(active) >= MAX_ACTIVE_PER_USER:
        raise Conflict(
            f"You already have {MAX_ACTIVE_PER_USER} active tokens; revoke some first.",
            code="too_many_tokens",
        )
    if any(t.name == clean_name for t in active):
        raise Conflict(f"You already have an active token named {clean_name!r}.", code="name_taken")
    secret = generate_secret()
    token = ApiToken(
        user_id=user_id,
        name=clean_name,
        prefix=secret[:_SHOWN_PREFIX],
        secret_hash=secret_hash(secret),
        scopes=granted,
        created_at=now,
        expires_at=expiry,
    )
    db.add(token)
    db.flush()
    audit.record(
        db,
        actor,
        "api_token.created",
        target_type="api_token",
        target_id=token.id,
        details={
            "name": clean_name,
            "owner_id": user_id,
            "scopes": granted,
            "prefix": token.prefix,
            "expires_at": expiry.isoformat(),
        },
    )
    return NewToken(token=token, secret=secret)


def list_tokens(db: Session, *, user_id: int | None) -> list[ApiToken]:
    """Tokens of one user (``None``: everyone's), newest first."""
    stmt = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return list(db.scalars(stmt))


def revoke_token(db: Session, actor: Actor, token_id: int, *, owner_id: int | None) -> ApiToken:
    """Revoke a token; ``owner_id`` limits it to that user's tokens (``None``: an admin).

    Revoking an already revoked token is a no-op (idempotent for scripts).
    """
    token = db.get(ApiToken, token_id)
    if token is None or (owner_id is not None and token.user_id != owner_id):
        raise NotFound("There is no such API token.", code="token_not_found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(
            db,
            actor,
            "api_token.revoked",
            target_type="api_token",
            target_id=token.id,
            details={"name": token.name, "owner_id": token.user_id, "prefix": token.prefix},
        )
    return token


# -- verification (hot path) ------------------------------------------------------------------
@dataclass(frozen=True)
class ApiTokenGrant:
    """What a request needs to know about a valid token."""

    id: int
    user_id: int
    scopes: frozenset[str]
    expires_at_ts: float
    last_used_ts: float | None


def _refused(detail: str, code: str = "invalid_token") -> Unauthenticated:
    return Unauthenticated(detail, code=code)


class ApiTokenVerifier:
    """Secret → grant, cached briefly; records last use at most once per ``touch_interval``."""

    def __init__(
        self,
        session_factory: Callable[[], Any],
        *,
        ttl: float = 3.0,
        touch_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_factory = session_factory
        self.ttl = ttl
        self.touch_interval = touch_interval
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, ApiTokenGrant | None, str]] = {}
        self._touched: dict[int, float] = {}
        self._lock = threading.Lock()

    def verify(self, secret: str) -> ApiTokenGrant:
        """The grant of a usable token, or Unauthenticated (invalid / expired / revoked)."""
        if not is_well_formed(secret):
            raise _refused("The API token is malformed.")
        digest = secret_hash(secret)
        now_mono = self._monotonic()
        cached = self._cache.get(digest)
        if cached is None or now_mono - cached[0] >= self.ttl:
            cached = (now_mono, *self._load(digest))
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = cached
        _, grant, state = cached
        if grant is None:
            if state == "revoked":
                raise _refused("This API token has been revoked.", "token_revoked")
            raise _refused("The API token is not valid.")
        if grant.expires_at_ts <= self._clock():
            raise _refused("This API token has expired.", "token_expired")
        self._touch(grant)
        return grant

    def _load(self, digest: str) -> tuple[ApiTokenGrant | None, str]:
        with self._session_factory() as db:
            row = db.scalar(select(ApiToken).where(ApiToken.secret_hash == digest))
            if row is None:
                return None, "unknown"
            if row.revoked_at is not None:
                return None, "revoked"
            grant = ApiTokenGrant(
                id=row.id,
                user_id=row.user_id,
                scopes=frozenset(str(s) for s in row.scopes) & frozenset(SCOPES),
                expires_at_ts=row.expires_at.timestamp(),
                last_used_ts=row.last_used_at.timestamp() if row.last_used_at else None,
            )
            return grant, "ok"

    def _touch(self, grant: ApiTokenGrant) -> None:
        now = self._clock()
        last = self._touched.get(grant.id, grant.last_used_ts or 0.0)
        if now - last < self.touch_interval:
            return
        self._touched[grant.id] = now
        stamp = datetime.fromtimestamp(now, tz=UTC)
        try:
            with self._session_factory() as db:
                db.execute(
                    update(ApiToken)
                    .where(ApiToken.id == grant.id)
                    .values(last_used_at=stamp)
                    .execution_options(synchronize_session=False)
                )
        except SQLAlchemyError as exc:
            # Last use is informative; a busy database must not refuse a valid token.
            log.warning("could not record last use of API token %s: %s", grant.id, exc)

    def forget(self) -> None:
        """Drop cached lookups (this replica revoked a token; others catch up within ``ttl``)."""
        with self._lock:
            self._cache.clear()
