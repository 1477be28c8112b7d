"""The external IdP's configuration: typed settings, versioned storage, and the live context.

* :class:`IdPSettings` (:mod:`gatehouse.domain.idp_settings`) — what an administrator
  configures, validated in one place (:meth:`IdPSettings.parse`); the issuer must be https,
  except loopback addresses when ``GATEHOUSE_ALLOW_INSECURE_HTTP`` is set.
* :func:`save_config` — every change adds an :class:`IdPConfig` row (a new *version*) with its
  author in the audit log. Concurrent edits are detected with the version as ETag: a stale
  ``If-Match`` is refused (412) so that no update is lost. The client secret (and the private
  key for ``private_key_jwt``) is encrypted with the runtime's secret box and write-only: a save
  without one keeps the previous one.
* :class:`IdPService` (``rt.idp``) — hands out one :class:`IdPContext` per configuration
  version, with its HTTP client (timeouts, CA bundle), metadata cache, JWKS cache and client
  credentials, so that every request of the same version shares the caches, and a new version
  starts with fresh ones. Any replica picks up a new version at its next call.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.domain import audit, changes
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import EncryptionContext, SecretBox
from gatehouse.domain.errors import Conflict, InvalidInput, PreconditionFailed
from gatehouse.domain.idp_settings import (
    DEFAULT_SCOPES,
    GroupRoleRule,
    IdPSettings,
    TokenAuthMethod,
    UserClaim,
)
from gatehouse.domain.idp_state import get_state
from gatehouse.metrics import IDP_REQUEST_SECONDS
from gatehouse.oidc import (
    ClientCredentials,
    ConfigurationError,
    IDTokenValidator,
    JWKSCache,
    MetadataCache,
    ProviderMetadata,
    build_client_assertion,
    fetch_userinfo,
)
from gatehouse.store.db import Database
from gatehouse.store.models import IdPConfig, IdPState

__all__ = [
    "DEFAULT_SCOPES",
    "GroupRoleRule",
    "IdPContext",
    "IdPNotConfigured",
    "IdPService",
    "IdPSettings",
    "StoredConfig",
    "TokenAuthMethod",
    "UserClaim",
    "etag_of",
    "load_config",
    "parse_if_match",
    "save_config",
]

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class IdPNotConfigured(Conflict):
    """No IdP configuration has been saved yet."""

    code = "idp_not_configured"


# -- versioned storage ---------------------------------------------------------------------


@dataclass(frozen=True)
class StoredConfig:
    """A stored version: settings plus whether its secrets are set (never their values)."""

    version: int
    settings: IdPSettings
    client_secret_set: bool
    private_key_set: bool
    created_by: str


def etag_of(version: int | None) -> str:
    """The ETag of a configuration version (``"0"`` before the first save)."""
    return f'"{version or 0}"'


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` header names; ``None`` when absent or ``*``.

    :raises PreconditionFailed: a value that names no version at all
    """
    if value is None or value.strip() == "*":
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise PreconditionFailed(
            "If-Match must be the ETag returned by GET /api/v1/idp.", code="precondition_failed"
        )
    return int(tag)


def load_config(db: Session, *, allow_insecure_http: bool) -> StoredConfig | None:
    """The current version, or ``None`` before the first save."""
    state = get_state(db)
    if state.current_version is None:
        return None
    row = db.get(IdPConfig, state.current_version)
    if row is None:
        return None
    return _stored(row, allow_insecure_http)


def _stored(row: IdPConfig, allow_insecure_http: bool) -> StoredConfig:
    return StoredConfig(
        version=row.version,
        settings=IdPSettings.parse(row.data, allow_insecure_http=allow_insecure_http),
        client_secret_set=row.client_secret_enc is not None,
        private_key_set=row.private_key_jwk_enc is not None,
        created_by=row.created_by,
    )


def _client_credentials(
    settings: IdPSettings,
    previous: IdPConfig | None,
    box: SecretBox,
    *,
    client_secret: str | None,
    private_key_jwk: str | None,
) -> tuple[bytes | None, bytes | None]:
    """The encrypted client secret and private key of a new version: a new value replaces the
    previous one, none keeps it; the chosen client authentication must have what it needs."""
    secret_enc = previous.client_secret_enc if previous is not None else None
    key_enc = previous.private_key_jwk_enc if previous is not None else None
    if client_secret is not None and client_secret != "":
        if len(client_secret) > 1024:
            raise InvalidInput(
                "The client secret is too long.", code="invalid_idp_config", field="client_secret"
            )
        secret_enc = box.encrypt_str(client_secret, context=EncryptionContext.IDP_CLIENT_SECRET)
    if private_key_jwk is not None and private_key_jwk != "":
        _check_private_key(settings, private_key_jwk)
        key_enc = box.encrypt_str(private_key_jwk, context=EncryptionContext.IDP_PRIVATE_KEY)
    method = settings.token_endpoint_auth_method
    if method in ("client_secret_basic", "client_secret_post") and secret_enc is None:
        raise InvalidInput(
            f"{method} needs the client secret.", code="invalid_idp_config", field="client_secret"
        )
    if method == "private_key_jwt" and key_enc is None:
        raise InvalidInput(
            "private_key_jwt needs the client's private key (a JWK).",
            code="invalid_idp_config",
            field="private_key_jwk",
        )
    return secret_enc, key_enc


# Long on purpose: one transaction (check, store, audit) read top to bottom.
def save_config(
    db: Session,
    actor: Actor,
    data: Mapping[str, Any],
    *,
    box: SecretBox,
    allow_insecure_http: bool,
    if_match: int | None,
    client_secret: str | None = None,
    private_key_jwk: str | None = None,
) -> StoredConfig:
    """Store a new configuration version; return it.

    ``client_secret`` / ``private_key_jwk``: ``None`` keeps the previous value (write-only
    fields); a value replaces it. The secret itself never reaches the audit log.

    :raises PreconditionFailed: ``if_match`` is not the current version (someone saved first)
    :raises InvalidInput: a field is invalid, or the chosen client authentication lacks its
        secret or key
    """
    settings = IdPSettings.parse(data, allow_insecure_http=allow_insecure_http)
    state = get_state(db, for_update=True)
    current = state.current_version
    if if_match is not None and if_match != (current or 0):
        raise PreconditionFailed(
            f"The IdP configuration changed (now version {current or 0}, you edited version "
            f"{if_match}). Reload it and apply your change again.",
        )
    previous = db.get(IdPConfig, current) if current is not None else None
    secret_enc, key_enc = _client_credentials(
        settings, previous, box, client_secret=client_secret, private_key_jwk=private_key_jwk
    )
    method = settings.token_endpoint_auth_method
    version = int(db.scalar(select(func.coalesce(func.max(IdPConfig.version), 0))) or 0) + 1
    row = IdPConfig(
        version=version,
        created_by=actor.name,
        data=settings.as_dict(),
        client_secret_enc=secret_enc,
        private_key_jwk_enc=key_enc,
    )
    db.add(row)
    state.current_version = version
    state.changed_by = actor.name
    state.revision = (state.revision or 0) + 1
    db.flush()
    changes.touch(db, "idp_config", version)
    audit.record(
        db,
        actor,
        "idp.config_saved",
        target_type="idp_config",
        target_id=version,
        details={
            "previous_version": current,
            "issuer": settings.issuer,
            "client_id": settings.client_id,
            "token_endpoint_auth_method": method,
            "client_secret_changed": client_secret not in (None, ""),
            "private_key_changed": private_key_jwk not in (None, ""),
        },
    )
    return _stored(row, allow_insecure_http)


def _check_private_key(settings: IdPSettings, jwk_json: str) -> None:
    """Refuse a key that cannot sign a client assertion, at save time rather than at sign-in."""
    try:
        credentials = ClientCredentials(
            client_id=settings.client_id,
            auth_method="private_key_jwt",
            private_key_jwk=json.loads(jwk_json),
        )
        build_client_assertion(credentials, "https://check.invalid/token")
    except (ValueError, TypeError, ConfigurationError) as exc:
        raise InvalidInput(
            "The private key must be a private JWK (RSA, EC or OKP) as JSON.",
            code="invalid_idp_config",
            field="private_key_jwk",
        ) from exc


# -- the live context ----------------------------------------------------------------------


HttpFactory = Callable[[IdPSettings], httpx.Client]


def default_http_client(settings: IdPSettings) -> httpx.Client:
    """An httpx client with explicit timeouts; with a CA bundle, only that bundle is trusted."""
    verify: ssl.SSLContext | bool = True
    if settings.ca_bundle_pem:
        verify = ssl.create_default_context(cadata=settings.ca_bundle_pem)
    return httpx.Client(
        timeout=HTTP_TIMEOUT,
        verify=verify,
        follow_redirects=False,
        event_hooks={"request": [_started], "response": [_answered]},
    )


def _started(request: httpx.Request) -> None:
    request.extensions["gatehouse_started"] = time.perf_counter()


def _answered(response: httpx.Response) -> None:
    """Observe the wait on the IdP (body included), so a slow sign-in can be told apart from
    a slow IdP (``gatehouse_idp_request_seconds``; bench/web_sign_in.py subtracts it)."""
    response.read()
    started = response.request.extensions.get("gatehouse_started")
    if isinstance(started, float):
        IDP_REQUEST_SECONDS.observe(time.perf_counter() - started)


@dataclass
class IdPContext:
    """Everything needed to talk to the IdP of one configuration version (thread-safe)."""

    version: int
    settings: IdPSettings
    http: httpx.Client
    web_client: ClientCredentials
    allow_insecure_http: bool
    _metadata_cache: MetadataCache = field(repr=False)
    jwks_refetch_cooldown: float = 30.0
    _jwks: JWKSCache | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def metadata(self) -> ProviderMetadata:
        """The provider metadata (cached; a failed refresh keeps the last good copy).

        :raises IdPUnavailableError | DiscoveryError: no good copy exists
        """
        return self._metadata_cache.get()

    @property
    def jwks(self) -> JWKSCache:
        """The provider's key cache (created on first use from the discovered ``jwks_uri``).

        :raises IdPUnavailableError | DiscoveryError: discovery has never succeeded
        """
        with self._lock:
            if self._jwks is None:
                self._jwks = JWKSCache(
                    self.http,
                    self.metadata().jwks_uri,
                    refetch_cooldown=self.jwks_refetch_cooldown,
                )
            return self._jwks

    def userinfo(
        self, access_token: str, subject: str, client_id: str | None = None
    ) -> dict[str, Any]:
        """The UserInfo claims for ``access_token``; their ``sub`` must be ``subject`` (OIDC
        Core 5.3.4). ``client_id``: the client the token was issued to (default: the web one).

        :raises IdPUnavailableError | DiscoveryError | UserInfoError | TokenValidationError:
        """
        return fetch_userinfo(
            self.http,
            self.metadata(),
            access_token,
            subject,
            jwks=self.jwks,
            client_id=client_id or self.settings.client_id,
        )

    def id_token_validator(self, client_id: str | None = None) -> IDTokenValidator:
        """A validator for ID tokens issued to ``client_id`` (default: the web client)."""
        return IDTokenValidator(
            metadata=self.metadata(),
            jwks=self.jwks,
            client_id=client_id or self.settings.client_id,
            leeway_seconds=self.settings.clock_skew_seconds,
        )

    def close(self) -> None:
        self.http.close()


class IdPService:
    """``rt.idp``: the current IdP context, cached per configuration version.

    ``http_factory`` builds each version's HTTP client (tests swap in a mock transport).
    """

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        allow_insecure_http: bool,
        http_factory: HttpFactory = default_http_client,
    ) -> None:
        self._db = db
        self._box = box
        self.allow_insecure_http = allow_insecure_http
        self.http_factory = http_factory
        #: minimum seconds between two JWKS fetches of one context (unknown kid, refresh)
        self.jwks_refetch_cooldown = 30.0
        self._contexts: dict[int, IdPContext] = {}
        self._lock = threading.Lock()

    def _state(self) -> tuple[bool, int | None]:
        """(active, current version): one statement, no transaction around it (the hot start
        of every sign-in and token exchange reads it; every replica agrees on it)."""
        with self._db.relaxed() as conn:
            row = conn.execute(
                select(IdPState.active, IdPState.current_version).where(IdPState.id == 1)
            ).first()
        return (bool(row.active), row.current_version) if row is not None else (False, None)

    def is_active(self) -> bool:
        """Whether OIDC sign-in is active (read from the database: every replica agrees)."""
        return self._state()[0]

    def active_context(self) -> tuple[bool, IdPContext | None]:
        """Whether OIDC is active and the current context (cached per version)."""
        active, version = self._state()
        return active, self.context_for(version) if version is not None else None

    def current_version(self, db: Session | None = None) -> int | None:
        if db is not None:
            return get_state(db).current_version
        return self._state()[1]

    def current(self, db: Session | None = None) -> IdPContext:
        """The context of the current configuration version.

        ``db``: an open unit of work to read through (SQLite has one writer: a second session
        opened inside another would wait for it).

        :raises IdPNotConfigured: nothing has been saved yet
        """
        version = self.current_version(db)
        if version is None:
            raise IdPNotConfigured(
                "No identity provider is configured yet: an administrator sets it up under "
                "Settings → Identity provider."
            )
        return self.context_for(version, db)

    def context_for(self, version: int, db: Session | None = None) -> IdPContext:
        """The context of one version (cached; only the two newest versions are kept)."""
        with self._lock:
            ctx = self._contexts.get(version)
            if ctx is not None:
                return ctx
        if db is not None:
            settings, secret, key = self._load(db, version)
        else:
            with self._db.session() as own:
                settings, secret, key = self._load(own, version)
        ctx = self._build(version, settings, secret, key)
        with self._lock:
            existing = self._contexts.get(version)
            if existing is not None:
                ctx.close()
                return existing
            self._contexts[version] = ctx
            for old in sorted(self._contexts)[:-2]:
                self._contexts.pop(old).close()
            return ctx

    def _load(self, db: Session, version: int) -> tuple[IdPSettings, str | None, str | None]:
        row = db.get(IdPConfig, version)
        if row is None:
            raise IdPNotConfigured(f"IdP configuration version {version} does not exist.")
        settings = IdPSettings.parse(row.data, allow_insecure_http=self.allow_insecure_http)
        secret = self._box.decrypt_optional(
            row.client_secret_enc, context=EncryptionContext.IDP_CLIENT_SECRET
        )
        key = self._box.decrypt_optional(
            row.private_key_jwk_enc, context=EncryptionContext.IDP_PRIVATE_KEY
        )
        return settings, secret, key

    def _build(
        self, version: int, settings: IdPSettings, secret: str | None, key: str | None
    ) -> IdPContext:
        http = self.http_factory(settings)
        method = settings.token_endpoint_auth_method
        uses_key = method == "private_key_jwt"
        credentials = ClientCredentials(
            client_id=settings.client_id,
            client_secret=None if uses_key else secret,
            auth_method=method,
            private_key_jwk=json.loads(key) if uses_key and key is not None else None,
        )
        cache = MetadataCache(http, settings.issuer, allow_insecure_http=self.allow_insecure_http)
        return IdPContext(
            version=version,
            settings=settings,
            http=http,
            web_client=credentials,
            allow_insecure_http=self.allow_insecure_http,
            _metadata_cache=cache,
            jwks_refetch_cooldown=self.jwks_refetch_cooldown,
        )

    def invalidate(self) -> None:
        """Drop every cached context (tests; a changed CA bundle takes effect per version)."""
        with self._lock:
            contexts, self._contexts = self._contexts, {}
        for ctx in contexts.values():
            ctx.close()

    def close(self) -> None:
        self.invalidate()
