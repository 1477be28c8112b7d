"""Environments the console knows: registration, joining, credentials, heartbeats, prerequisites.

An administrator registers an environment and receives a one-time join token (shown once, only
its SHA-256 is stored, valid for :data:`JOIN_TOKEN_LIFETIME`). The environment server trades it
for a long-lived credential (again only the hash is stored) that authenticates every sync call.
Deregistering deletes the row, so the credential stops working at once. Every change is audited,
and changes environments must see (their own removal, the prerequisite table) go to the feed.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.domain import audit, changes, prerequisites
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import random_token, sha256_hex
from gatehouse.domain.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from gatehouse.domain.prerequisites import PROTOCOL_COMPONENT, PrerequisiteFailure
from gatehouse.settings import is_loopback_host
from gatehouse.store.models import Environment, Prerequisite

Kind = Literal["dev", "test", "prod", "other"]
KINDS: tuple[str, ...] = ("dev", "test", "prod", "other")
JOIN_TOKEN_LIFETIME = timedelta(hours=1)
JOIN_TOKEN_PREFIX = "ghj_"  # noqa: S105 - a prefix, makes leaked tokens recognisable
CREDENTIAL_PREFIX = "ghe_"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_COMPONENT_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: A report larger than this is refused: a heartbeat is a handful of short strings.
_MAX_COMPONENTS = 64


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def validate_name(raw: str) -> str:
    name = (raw or "").strip().lower()
    if not _NAME_RE.match(name):
        raise InvalidInput(
            "The environment name must be 1 to 64 lowercase letters, digits, - or _, "
            "starting with a letter or digit.",
            code="invalid_name",
        )
    return name


def validate_base_url(raw: str, *, allow_insecure_http: bool) -> str:
    """An https URL, or http on loopback when insecure http is allowed (tests, development)."""
    url = (raw or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 500:
        raise InvalidInput(
            "The public URL must be an absolute https URL, e.g. https://dev.example.com.",
            code="invalid_url",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput(
            "The public URL must not carry a query, fragment or credentials.", code="invalid_url"
        )
    if parts.scheme == "http" and not (allow_insecure_http and is_loopback_host(parts.hostname)):
        raise InvalidInput(
            "The public URL must use https (http is only allowed on 127.0.0.1/localhost with "
            "GATEHOUSE_ALLOW_INSECURE_HTTP).",
            code="invalid_url",
        )
    return url


def validate_kind(raw: str) -> str:
    if raw not in KINDS:
        raise InvalidInput(f"The kind must be one of {', '.join(KINDS)}.", code="invalid_kind")
    return raw


def get(db: Session, env_id: int) -> Environment:
    env = db.get(Environment, env_id)
    if env is None:
        raise NotFound(f"No environment with id {env_id}.")
    return env


def list_all(db: Session) -> list[Environment]:
    return list(db.scalars(select(Environment).order_by(Environment.name)))


def _issue_join_token(env: Environment, now: datetime) -> str:
    token = JOIN_TOKEN_PREFIX + random_token(32)
    env.join_token_hash = sha256_hex(token)
    env.join_token_expires_at = now + JOIN_TOKEN_LIFETIME
    return token


def register(
    db: Session,
    actor: Actor,
    *,
    name: str,
    base_url: str,
    kind: str,
    allow_insecure_http: bool,
    now: datetime | None = None,
) -> tuple[Environment, str]:
    """Create the environment; returns it and its join token (the only time it is visible)."""
    now = _now(now)
    name = validate_name(name)
    url = validate_base_url(base_url, allow_insecure_http=allow_insecure_http)
    kind = validate_kind(kind)
    if db.scalar(select(Environment.id).where(Environment.name == name)) is not None:
        raise Conflict(f"An environment named {name!r} already exists.", code="name_taken")
    env = Environment(name=name, base_url=url, kind=kind, status="pending", versions={}, health={})
    token = _issue_join_token(env, now)
    db.add(env)
    db.flush()
    changes.touch(db, "environment", env.id)
    audit.record(
        db,
        actor,
        "environment.register",
        target_type="environment",
        target_id=env.id,
        details={"name": name, "base_url": url, "kind": kind},
    )
    return env, token


def rotate_join_token(
    db: Session, actor: Actor, env: Environment, now: datetime | None = None
) -> str:
    """A fresh join token (the previous one stops working); the current credential stays valid
    until the environment joins again with the new token."""
    token = _issue_join_token(env, _now(now))
    audit.record(
        db,
        actor,
        "environment.join_token",
        target_type="environment",
        target_id=env.id,
        details={"name": env.name},
    )
    return token


def join(db: Session, join_token: str, now: datetime | None = None) -> tuple[Environment, str]:
    """Trade a join token for the long-lived credential. The token is consumed either way."""
    now = _now(now)
    digest = sha256_hex(join_token or "")
    env = db.scalar(select(Environment).where(Environment.join_token_hash == digest))
    if env is None or not hmac.compare_digest(env.join_token_hash or "", digest):
        raise Unauthenticated(
            "This join token is not valid: it was already used, replaced, or never issued. "
            "Create a new one on the console.",
            code="invalid_join_token",
        )
    expires = env.join_token_expires_at
    env.join_token_hash = None
    env.join_token_expires_at = None
    if expires is None or expires <= now:
        audit.record(
            db,
            Actor.system(f"environment:{env.name}"),
            "environment.join",
            outcome="failure",
            target_type="environment",
            target_id=env.id,
            reason="join_token_expired",
        )
        db.flush()
        raise Unauthenticated(
            "This join token has expired (they are valid for one hour). Create a new one on the "
            "console.",
            code="join_token_expired",
        )
    credential = CREDENTIAL_PREFIX + random_token(32)
    env.credential_hash = sha256_hex(credential)
    env.status = "joined"
    env.last_seen_at = now
    audit.record(
        db,
        Actor.system(f"environment:{env.name}"),
        "environment.join",
        target_type="environment",
        target_id=env.id,
        details={"name": env.name},
    )
    return env, credential


def authenticate(db: Session, credential: str) -> Environment:
    """The environment this credential belongs to; 401 for anything else (e.g. deregistered)."""
    digest = sha256_hex(credential or "")
    env = db.scalar(select(Environment).where(Environment.credential_hash == digest))
    if env is None or not hmac.compare_digest(env.credential_hash or "", digest):
        raise Unauthenticated(
            "This environment credential is not valid (the environment may have been "
            "deregistered).",
            code="invalid_environment_credential",
        )
    return env


def deregister(db: Session, actor: Actor, env: Environment) -> None:
    """Delete the environment: its credential and its role assignments go with it, at once."""
    env_id, name = env.id, env.name
    db.delete(env)
    db.flush()
    changes.touch(db, "environment", env_id)
    audit.record(
        db,
        actor,
        "environment.deregister",
        target_type="environment",
        target_id=env_id,
        details={"name": name},
    )


@dataclass(frozen=True)
class Report:
    """What an environment server says about itself in a heartbeat."""

    gatehouse_version: str
    protocol_version: int
    versions: dict[str, str]
    health: dict[str, Any] = field(default_factory=dict)


def parse_component_versions(raw: str) -> dict[str, str]:
    """``"platform_server=11.18.1, service_studio=11.53.13"`` -> a dict; refuses junk early."""
    result: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        component, sep, version = item.partition("=")
        component, version = component.strip(), version.strip()
        if not sep or not _COMPONENT_RE.match(component) or not version:
            raise InvalidInput(
                f"Component versions must look like 'platform_server=11.18.1', not {item!r}.",
                code="invalid_component_versions",
            )
        result[component] = version
    return result


def heartbeat(db: Session, env: Environment, report: Report, now: datetime | None = None) -> None:
    """Store what the environment reports; versions are kept verbatim (prerequisites judge)."""
    if len(report.versions) > _MAX_COMPONENTS:
        raise InvalidInput(f"At most {_MAX_COMPONENTS} components can be reported.")
    for component, version in report.versions.items():
        if not _COMPONENT_RE.match(component) or len(version) > 32:
            raise InvalidInput(f"The component {component[:64]!r} or its version is not valid.")
    env.gatehouse_version = report.gatehouse_version[:32]
    env.protocol_version = report.protocol_version
    if env.versions != report.versions:
        audit.record(
            db,
            Actor.system(f"environment:{env.name}"),
            "environment.versions",
            target_type="environment",
            target_id=env.id,
            details={"before": env.versions, "after": report.versions},
        )
        env.versions = dict(report.versions)
    env.health = dict(report.health)
    seen(env, now)


def seen(env: Environment, now: datetime | None = None, synced_revision: int | None = None) -> None:
    env.last_seen_at = _now(now)
    env.status = "joined"
    if synced_revision is not None:
        env.synced_revision = synced_revision


# -- listing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvironmentView:
    """An environment as the console lists it: the row plus what the console concludes."""

    env: Environment
    state: str  # pending | online | silent
    sync_lag: int  # revisions the environment has not pulled yet
    seconds_since_seen: int | None
    failures: tuple[PrerequisiteFailure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failing_components(self) -> list[str]:
        return sorted({f.component for f in self.failures if f.component})


def view(db: Session, now: datetime | None = None) -> list[EnvironmentView]:
    now = _now(now)
    latest = changes.latest_revision(db)
    mins = prerequisites.minimums(db)
    min_protocol = prerequisites.minimum_protocol(db)
    out: list[EnvironmentView] = []
    for env in list_all(db):
        since = None if env.last_seen_at is None else int((now - env.last_seen_at).total_seconds())
        if env.credential_hash is None:
            state = "pending"
        elif since is not None and since <= prerequisites.MAX_SILENCE.total_seconds():
            state = "online"
        else:
            state = "silent"
        failures = prerequisites.check_environment(env, mins, min_protocol, now)
        out.append(
            EnvironmentView(
                env=env,
                state=state,
                sync_lag=max(0, latest - env.synced_revision) if env.credential_hash else latest,
                seconds_since_seen=since,
                failures=tuple(failures),
            )
        )
    return out


# -- prerequisites table ----------------------------------------------------------------------
def prerequisite_table(db: Session) -> dict[str, str]:
    """Every minimum, the protocol row included (as the editor shows it)."""
    table = prerequisites.minimums(db)
    table[PROTOCOL_COMPONENT] = str(prerequisites.minimum_protocol(db))
    return table


def set_prerequisites(db: Session, actor: Actor, table: Mapping[str, str]) -> dict[str, str]:
    """Replace the table (components left out are dropped); every value must parse."""
    clean: dict[str, str] = {}
    for raw_component, raw_version in table.items():
        component, version = raw_component.strip(), str(raw_version).strip()
        if not _COMPONENT_RE.match(component):
            raise InvalidInput(
                f"{component[:64]!r} is not a component name (lowercase letters, digits, _).",
                code="invalid_component",
            )
        if component == PROTOCOL_COMPONENT:
            if not version.isdigit() or int(version) < 1:
                raise InvalidInput(
                    f"The minimum {PROTOCOL_COMPONENT} must be a whole number >= 1.",
                    code="invalid_version",
                )
        else:
            try:
                Version(version)
            except InvalidVersion as exc:
                raise InvalidInput(
                    f"{version[:32]!r} is not a version for {component} (e.g. 11.18.1).",
                    code="invalid_version",
                ) from exc
        if len(version) > 32:
            raise InvalidInput(f"The version for {component} is too long.", code="invalid_version")
        clean[component] = version
    before = {p.component: p.min_version for p in db.scalars(select(Prerequisite))}
    if before == clean:
        return clean
    for row in db.scalars(select(Prerequisite)):
        if row.component not in clean:
            db.delete(row)
    for component, version in clean.items():
        existing = db.get(Prerequisite, component)
        if existing is None:
            db.add(Prerequisite(component=component, min_version=version))
        else:
            existing.min_version = version
    db.flush()
    audit.record(
        db,
        actor,
        "prerequisites.update",
        target_type="prerequisites",
        details={"before": before, "after": clean},
    )
    return clean
