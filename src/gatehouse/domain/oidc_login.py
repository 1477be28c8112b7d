"""The console's OIDC sign-in: start, callback, keeping tokens fresh, logout, back-channel logout.

Framework-free: the web layer passes query parameters and cookie values in and turns results
and :class:`SignInError` into responses. Protocol checks are the ones of :mod:`gatehouse.oidc`;
this module decides what they mean for a Gatehouse session.

Flow state lives in the database (``oidc_flows``), encrypted, keyed by the SHA-256 of ``state``
and bound to the browser by the SHA-256 of a random cookie: any replica can finish a flow, and a
flow is consumed (deleted, in its own committed transaction) before anything else is checked,
so a replayed callback always fails.

Callback order (OIDC Core 3.1.2.7, RFC 9207 2.4, 3.1.3.7): consume the flow → same configuration
version → ``state`` (constant time) → ``iss`` → IdP ``error`` → code exchange → ID token
(signature, iss, aud, azp, alg, exp/iat with leeway, nonce, at_hash, sub) → UserInfo when a
needed claim is missing (its ``sub`` must equal the ID token's) → the IT user → a new session.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from gatehouse.domain import audit, replay, sessions, users
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import DecryptionError, random_token, sha256_hex
from gatehouse.domain.errors import DomainError
from gatehouse.domain.identity import IdentityRefused, MatchPreview, claims_needed, match_user
from gatehouse.domain.identity import preview_match as _preview_match
from gatehouse.domain.idp import IdPContext, IdPNotConfigured
from gatehouse.metrics import BACKCHANNEL_LOGOUT, IDP_UNAVAILABLE, OIDC_CALLBACK, OIDC_REFRESH
from gatehouse.oidc import (
    AuthorizationResponseError,
    DiscoveryError,
    FlowSecrets,
    IdPErrorResponse,
    IdPUnavailableError,
    OIDCError,
    RefreshRefusedError,
    TokenEndpointError,
    TokenResponse,
    TokenValidationError,
    UserInfoError,
    VerifiedIDTokenClaims,
    build_authorization_request,
    exchange_code,
    fetch_userinfo,
    parse_authorization_response,
    refresh,
    validate_logout_token,
    validate_refreshed_id_token,
)
from gatehouse.store.models import OIDCFlow, utcnow
from gatehouse.store.models import Session as SessionRow

if TYPE_CHECKING:  # the runtime imports the domain, not the other way round
    from gatehouse.runtime import Runtime

__all__ = [
    "CALLBACK_PATH",
    "FLOW_LIFETIME",
    "REFRESH_MARGIN",
    "FlowStart",
    "Restart",
    "SessionKeeper",
    "SignInError",
    "SignedIn",
    "TestSignIn",
    "backchannel_logout",
    "finish_flow",
    "logout_url",
    "start_flow",
]

CALLBACK_PATH = "/auth/oidc/callback"
FLOW_LIFETIME = timedelta(minutes=10)
#: refresh the IdP tokens this long before they expire
REFRESH_MARGIN = timedelta(seconds=30)
#: after an IdP outage during a refresh, wait this long before trying again for that session
REFRESH_BACKOFF_SECONDS = 15.0
FLOW_CONTEXT = "oidc_flow:"
ID_TOKEN_CONTEXT = "session.id_token"  # noqa: S105 - an encryption context label
REFRESH_TOKEN_CONTEXT = "session.refresh_token"  # noqa: S105 - an encryption context label
#: prompt=none answers that mean "the user must interact": retry interactively (OIDC Core 3.1.2.6)
INTERACTION_ERRORS = frozenset(
    {"login_required", "interaction_required", "consent_required", "account_selection_required"}
)

Purpose = Literal["login", "test"]


class SignInError(DomainError):
    """A sign-in attempt failed; ``code`` is also the metrics outcome, ``title`` heads the page."""

    def __init__(
        self,
        detail: str,
        *,
        code: str,
        status: int = 400,
        title: str = "Sign-in failed",
    ) -> None:
        super().__init__(detail, code=code)
        self.status = status
        self.title = title


def _unavailable(step: str) -> SignInError:
    IDP_UNAVAILABLE.labels(step=step).inc()
    return SignInError(
        "The identity provider cannot be reached right now. Try again in a few minutes; "
        "local admins can still sign in with their password.",
        code="idp_unavailable",
        status=503,
        title="Identity provider unavailable",
    )


# -- start ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowStart:
    """Where to send the browser, and the browser-binding cookie value to set."""

    url: str
    browser_secret: str


def _valid_browser_secret(value: str | None) -> bool:
    return value is not None and 32 <= len(value) <= 128


def start_flow(
    rt: Runtime,
    *,
    return_to: str,
    purpose: Purpose,
    browser_secret: str | None,
    prompt: str | None = None,
    ctx: IdPContext | None = None,
) -> FlowStart:
    """Build the authorization request and store its secrets (one-time, bound to the browser).

    :raises IdPNotConfigured: no configuration
    :raises SignInError: ``idp_unavailable`` (discovery failed)
    """
    ctx = ctx if ctx is not None else rt.idp.current()
    metadata = _metadata(ctx, step="start")
    url, secrets = build_authorization_request(
        metadata,
        ctx.settings.client_id,
        rt.settings.public_url + CALLBACK_PATH,
        ctx.settings.request_scopes(metadata),
        prompt=prompt,
    )
    browser = browser_secret if _valid_browser_secret(browser_secret) else random_token(32)
    assert browser is not None
    state_hash = sha256_hex(secrets.state)
    payload = json.dumps({"secrets": secrets.as_dict(), "return_to": return_to, "prompt": prompt})
    now = utcnow()
    # A flow lost in a database crash only means signing in again: a relaxed write. Expired
    # flows are deleted by housekeeping.
    with rt.db.relaxed() as conn:
        conn.execute(
            insert(OIDCFlow).values(
                state_hash=state_hash,
                browser_hash=sha256_hex(browser),
                purpose=purpose,
                data_enc=rt.box.encrypt_str(payload, context=FLOW_CONTEXT + state_hash),
                config_version=ctx.version,
                created_at=now,
                expires_at=now + FLOW_LIFETIME,
            )
        )
    return FlowStart(url=url, browser_secret=browser)


def _metadata(ctx: IdPContext, *, step: str) -> Any:
    try:
        return ctx.metadata()
    except IdPUnavailableError as exc:
        raise _unavailable(step) from exc
    except DiscoveryError as exc:
        raise SignInError(
            "The identity provider's configuration document is not acceptable ("
            + exc.description
            + "). An administrator must fix the configuration.",
            code="discovery_failed",
            status=502,
            title="Identity provider misconfigured",
        ) from exc


# -- callback ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flow:
    purpose: Purpose
    secrets: FlowSecrets
    return_to: str
    prompt: str | None
    config_version: int


def _consume_flow(
    rt: Runtime, state: str, browser_secret: str | None
) -> tuple[_Flow, IdPContext, bool]:
    """Find the flow by ``state`` and delete it, then check browser and expiry.

    The deletion is one ``DELETE … RETURNING`` (one round trip, atomic): of two callbacks with
    the same state, one gets the flow. Returns (flow, current context, OIDC active).
    """
    state_hash = sha256_hex(state)
    failure: SignInError | None = None
    flow: _Flow | None = None
    ctx: IdPContext | None = None
    active = False
    with rt.db.relaxed() as conn:
        row = conn.execute(
            delete(OIDCFlow)
            .where(OIDCFlow.state_hash == state_hash)
            .returning(
                OIDCFlow.browser_hash,
                OIDCFlow.purpose,
                OIDCFlow.data_enc,
                OIDCFlow.config_version,
                OIDCFlow.expires_at,
            )
        ).first()
    if row is None:
        failure = SignInError(
            "This sign-in link is unknown or was already used. Start again.", code="bad_state"
        )
    elif not _valid_browser_secret(browser_secret) or not hmac.compare_digest(
        sha256_hex(browser_secret or ""), row.browser_hash
    ):
        failure = SignInError(
            "This sign-in was started in another browser. Start again here.",
            code="browser_mismatch",
        )
    elif utcnow() >= row.expires_at:
        failure = SignInError("The sign-in took too long. Start again.", code="flow_expired")
    else:
        try:
            data = json.loads(rt.box.decrypt_str(row.data_enc, context=FLOW_CONTEXT + state_hash))
        except (DecryptionError, ValueError):
            failure = SignInError("The sign-in state is unreadable.", code="bad_state")
        else:
            flow = _Flow(
                purpose="test" if row.purpose == "test" else "login",
                secrets=FlowSecrets.from_dict(data["secrets"]),
                return_to=str(data.get("return_to") or "/"),
                prompt=data.get("prompt"),
                config_version=row.config_version,
            )
            active, ctx = rt.idp.active_context()
            if ctx is None:
                try:
                    ctx = rt.idp.current()  # raises with the reason nothing is configured
                except IdPNotConfigured as exc:
                    failure = SignInError(exc.detail, code="idp_not_configured", status=409)
    if failure is not None:
        raise failure
    assert flow is not None and ctx is not None
    return flow, ctx, active


@dataclass(frozen=True)
class SignedIn:
    raw_session: str
    user_id: int
    return_to: str


@dataclass(frozen=True)
class TestSignIn:
    """The admin's "Test sign-in": what the IdP sent and which user it maps to."""

    id_token_claims: dict[str, Any]
    userinfo_claims: dict[str, Any] | None
    preview: MatchPreview
    config_version: int


@dataclass(frozen=True)
class Restart:
    """A ``prompt=none`` attempt needs interaction: send the browser to an interactive flow."""

    return_to: str


@dataclass(frozen=True)
class _Identity:
    id_token: str
    claims: VerifiedIDTokenClaims
    userinfo: dict[str, Any] | None
    tokens: TokenResponse = field(repr=False)

    @property
    def merged(self) -> dict[str, Any]:
        """UserInfo fills what the ID token lacks; the ID token's own claims always win."""
        return {**(self.userinfo or {}), **self.claims}


def _authenticate(ctx: IdPContext, flow: _Flow, params: Mapping[str, str]) -> _Identity | Restart:
    metadata = _metadata(ctx, step="callback")
    if flow.secrets.issuer != metadata.issuer:
        raise SignInError(
            "The identity provider changed while you were signing in. Start again.",
            code="config_changed",
        )
    try:
        code = parse_authorization_response(
            params, expected_state=flow.secrets.state, metadata=metadata
        )
    except IdPErrorResponse as exc:
        if flow.prompt == "none" and exc.idp_error in INTERACTION_ERRORS:
            return Restart(flow.return_to)
        if exc.idp_error == "access_denied":
            detail = "The identity provider did not let you sign in (access denied)."
        else:
            detail = (
                f"The identity provider answered with the error {exc.idp_error!r}. "
                "Try again, or ask an administrator."
            )
        raise SignInError(detail, code="idp_error", status=403) from exc
    except AuthorizationResponseError as exc:
        raise SignInError(
            f"The answer from the identity provider was refused: {exc.description}",
            code=exc.error,
        ) from exc
    try:
        tokens = exchange_code(
            ctx.http,
            metadata,
            ctx.web_client,
            code,
            flow.secrets.redirect_uri,
            flow.secrets.code_verifier,
        )
    except IdPUnavailableError as exc:
        raise _unavailable("token") from exc
    except TokenEndpointError as exc:
        raise SignInError(
            f"The identity provider refused to complete the sign-in: {exc.description}",
            code="token_exchange_failed",
            status=502,
        ) from exc
    assert tokens.id_token is not None
    try:
        claims = ctx.id_token_validator().validate(
            tokens.id_token,
            nonce=flow.secrets.nonce,
            access_token=tokens.access_token,
            max_age_seconds=flow.secrets.max_age,
        )
    except IdPUnavailableError as exc:
        raise _unavailable("jwks") from exc
    except TokenValidationError as exc:
        raise SignInError(
            f"The identity provider's ID token was refused: {exc.description}",
            code=exc.error,
        ) from exc
    userinfo: dict[str, Any] | None = None
    if any(name not in claims for name in claims_needed(ctx.settings)) and (
        metadata.userinfo_endpoint is not None
    ):
        try:
            userinfo = fetch_userinfo(
                ctx.http,
                metadata,
                tokens.access_token,
                str(claims["sub"]),
                jwks=ctx.jwks,
                client_id=ctx.settings.client_id,
            )
        except IdPUnavailableError as exc:
            raise _unavailable("userinfo") from exc
        except (UserInfoError, TokenValidationError) as exc:
            raise SignInError(
                f"The identity provider's user information was refused: {exc.description}",
                code=exc.error,
            ) from exc
    return _Identity(tokens.id_token, claims, userinfo, tokens)


def _expiry(seconds: float | int) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def _session_fields(
    rt: Runtime, ctx: IdPContext, identity: _Identity, issuer: str
) -> dict[str, Any]:
    tokens = identity.tokens
    now = utcnow()
    sid = identity.claims.get("sid")
    return {
        "idp_issuer": issuer,
        "idp_subject": identity.claims["sub"],
        "idp_sid": sid if isinstance(sid, str) and len(sid) <= 255 else None,
        "idp_config_version": ctx.version,
        "id_token_enc": rt.box.encrypt_str(identity.id_token, context=ID_TOKEN_CONTEXT),
        "id_token_expires_at": _expiry(identity.claims["exp"]),
        "refresh_token_enc": rt.box.encrypt_str(tokens.refresh_token, context=REFRESH_TOKEN_CONTEXT)
        if tokens.refresh_token
        else None,
        "access_token_expires_at": now + timedelta(seconds=tokens.expires_in)
        if tokens.expires_in is not None
        else None,
    }


def finish_flow(
    rt: Runtime,
    params: Mapping[str, str],
    *,
    browser_secret: str | None,
    ip: str | None,
    user_agent: str | None,
    replaces: str | None,
) -> SignedIn | TestSignIn | Restart:
    """Finish a sign-in from the callback's query parameters. Counts every outcome.

    :raises SignInError: with the outcome as ``code``
    """
    try:
        result = _finish(rt, params, browser_secret, ip, user_agent, replaces)
    except SignInError as exc:
        OIDC_CALLBACK.labels(outcome=exc.code).inc()
        audit.record_now(
            rt.db.session,
            Actor.anonymous(ip),
            "login.oidc",
            outcome="failure",
            reason=exc.code,
        )
        raise
    OIDC_CALLBACK.labels(
        outcome="ok"
        if isinstance(result, SignedIn)
        else ("test_ok" if isinstance(result, TestSignIn) else "interaction_required")
    ).inc()
    return result


def _finish(
    rt: Runtime,
    params: Mapping[str, str],
    browser_secret: str | None,
    ip: str | None,
    user_agent: str | None,
    replaces: str | None,
) -> SignedIn | TestSignIn | Restart:
    state = params.get("state")
    if not state or len(state) > 512:
        raise SignInError("The answer from the identity provider has no state.", code="bad_state")
    flow, ctx, active = _consume_flow(rt, state, browser_secret)
    if ctx.version != flow.config_version:
        raise SignInError(
            "The identity provider configuration changed while you were signing in. Start again.",
            code="config_changed",
        )
    if flow.purpose == "login" and not active:
        raise SignInError("Single sign-on is not active.", code="oidc_not_active", status=409)
    identity = _authenticate(ctx, flow, params)
    if isinstance(identity, Restart):
        return identity
    issuer = str(identity.claims["iss"])
    if flow.purpose == "test":
        with rt.db.session() as db:
            preview = _preview_match(db, ctx.settings, issuer, identity.merged)
        return TestSignIn(
            id_token_claims=dict(identity.claims),
            userinfo_claims=identity.userinfo,
            preview=preview,
            config_version=ctx.version,
        )
    try:
        with rt.db.session() as db:
            user = match_user(db, ctx.settings, issuer, identity.merged, actor=Actor.anonymous(ip))
            users.mark_signed_in(user)
            raw, _row = sessions.create_session(
                db,
                user,
                method="oidc",
                limits=rt.session_limits,
                ip=ip,
                user_agent=user_agent,
                replaces=replaces,
                **_session_fields(rt, ctx, identity, issuer),
            )
            audit.record(
                db,
                Actor.of(user, ip),
                "login.oidc",
                target_type="user",
                target_id=user.id,
                details={
                    "issuer": issuer,
                    "refresh_token": identity.tokens.refresh_token is not None,
                    "userinfo": identity.userinfo is not None,
                },
            )
            user_id = user.id
    except IdentityRefused as exc:
        raise SignInError(
            exc.detail,
            code=exc.code,
            status=403,
            title="Your account is not ready" if exc.code == "unknown_user" else "Sign-in refused",
        ) from exc
    rt.users.invalidate(user_id)
    return SignedIn(raw_session=raw, user_id=user_id, return_to=flow.return_to)


# -- keeping the tokens fresh --------------------------------------------------------------


def _stored_claims(id_token: str) -> VerifiedIDTokenClaims:
    """The claims of an ID token that was verified before it was stored (encrypted)."""
    payload = id_token.split(".")[1]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return VerifiedIDTokenClaims(dict(data))


FreshOutcome = Literal["fresh", "refreshed", "kept", "ended", "reauth"]


@dataclass(frozen=True)
class _Snapshot:
    id_hash: str
    method: str
    revoked: bool
    idp_issuer: str | None
    id_token_enc: bytes | None
    id_token_expires_at: datetime | None
    refresh_token_enc: bytes | None
    access_token_expires_at: datetime | None

    @classmethod
    def of(cls, row: SessionRow) -> _Snapshot:
        return cls(
            id_hash=row.id_hash,
            method=row.method,
            revoked=row.revoked_at is not None,
            idp_issuer=row.idp_issuer,
            id_token_enc=row.id_token_enc,
            id_token_expires_at=row.id_token_expires_at,
            refresh_token_enc=row.refresh_token_enc,
            access_token_expires_at=row.access_token_expires_at,
        )


@dataclass(frozen=True)
class _Update:
    outcome: FreshOutcome
    reason: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


def refresh_due(row: SessionRow | _Snapshot, now: datetime | None = None) -> bool:
    """Whether an OIDC session's IdP tokens are about to expire (cheap: no I/O)."""
    if row.method != "oidc":
        return False
    now = now or utcnow()
    if row.refresh_token_enc is None:
        return row.id_token_expires_at is not None and now >= row.id_token_expires_at
    deadline = row.access_token_expires_at or row.id_token_expires_at
    return deadline is not None and now >= deadline - REFRESH_MARGIN


class SessionKeeper:
    """Refreshes the IdP tokens of console sessions in use (one refresh at a time per session).

    * refresh before expiry; the refreshed ID token must keep ``iss``, ``sub``, ``aud``
      (OIDC Core 12.2);
    * the IdP refuses (``invalid_grant``) or sends an invalid ID token: the session ends now;
    * the IdP is unreachable: the session is kept (an outage never ends a session early) and
      the refresh is retried after a short back-off;
    * no refresh token: the session lives until the ID token's ``exp`` + the configured grace,
      then the browser re-authenticates (``prompt=none`` first).

    Refresh tokens rotate at many IdPs, so two concurrent refreshes of one session would burn
    the grant: an in-process lock serialises them, and on PostgreSQL the session row is locked
    (``FOR UPDATE``) across the refresh so that replicas serialise too.
    """

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._retry_at: dict[str, float] = {}

    def _lock(self, id_hash: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 10_000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(id_hash, threading.Lock())

    def check(self, row: SessionRow) -> FreshOutcome:
        """Called on each request of a session; does I/O only when the tokens are due."""
        if not refresh_due(row):
            return "fresh"
        if self._retry_at.get(row.id_hash, 0.0) > time.monotonic():
            return "kept"
        with self._lock(row.id_hash):
            rt = self._rt
            if not rt.db.is_sqlite:
                with rt.db.session() as db:
                    locked = db.get(SessionRow, row.id_hash, with_for_update=True)
                    if locked is None:
                        return "ended"
                    update = self._plan(_Snapshot.of(locked))
                    self._apply(db, locked, update)
            else:
                with rt.db.session() as db:
                    current = db.get(SessionRow, row.id_hash)
                    snap = _Snapshot.of(current) if current is not None else None
                if snap is None:
                    return "ended"
                update = self._plan(snap)
                with rt.db.session() as db:
                    current = db.get(SessionRow, row.id_hash)
                    if current is not None:
                        self._apply(db, current, update)
        return update.outcome

    def _plan(self, snap: _Snapshot) -> _Update:
        rt = self._rt
        now = utcnow()
        if snap.revoked:
            return _Update("ended")
        if not refresh_due(snap, now):
            return _Update("fresh")  # another request refreshed it meanwhile
        if snap.refresh_token_enc is None or snap.id_token_enc is None:
            grace = self._grace()
            assert snap.id_token_expires_at is not None
            if now < snap.id_token_expires_at + grace:
                return _Update("fresh")
            OIDC_REFRESH.labels(outcome="reauth_required").inc()
            return _Update("reauth", "reauth_required")
        try:
            ctx = rt.idp.current()
        except IdPNotConfigured:
            OIDC_REFRESH.labels(outcome="not_configured").inc()
            return _Update("ended", "idp_not_configured")
        if ctx.settings.issuer != snap.idp_issuer:
            OIDC_REFRESH.labels(outcome="issuer_changed").inc()
            return _Update("ended", "idp_changed")
        try:
            refresh_token = rt.box.decrypt_str(
                snap.refresh_token_enc, context=REFRESH_TOKEN_CONTEXT
            )
            previous = _stored_claims(
                rt.box.decrypt_str(snap.id_token_enc, context=ID_TOKEN_CONTEXT)
            )
        except (DecryptionError, ValueError, IndexError):
            OIDC_REFRESH.labels(outcome="unreadable").inc()
            return _Update("ended", "tokens_unreadable")
        try:
            metadata = ctx.metadata()
            tokens = refresh(ctx.http, metadata, ctx.web_client, refresh_token)
            claims = validate_refreshed_id_token(
                tokens.id_token,
                previous,
                metadata=metadata,
                jwks=ctx.jwks,
                client_id=ctx.settings.client_id,
                leeway_seconds=ctx.settings.clock_skew_seconds,
                access_token=tokens.access_token,
            )
        except RefreshRefusedError:
            OIDC_REFRESH.labels(outcome="refused").inc()
            return _Update("ended", "idp_refused_refresh")
        except TokenValidationError as exc:
            OIDC_REFRESH.labels(outcome=exc.error).inc()
            return _Update("ended", "invalid_refreshed_id_token")
        except (IdPUnavailableError, DiscoveryError):
            OIDC_REFRESH.labels(outcome="idp_unavailable").inc()
            IDP_UNAVAILABLE.labels(step="refresh").inc()
            self._retry_at[snap.id_hash] = time.monotonic() + REFRESH_BACKOFF_SECONDS
            return _Update("kept")
        except OIDCError as exc:
            # another token endpoint answer (e.g. invalid_client after a secret rotation):
            # not a verdict on the user, so the session is kept and the refresh retried later
            OIDC_REFRESH.labels(outcome=exc.error).inc()
            self._retry_at[snap.id_hash] = time.monotonic() + REFRESH_BACKOFF_SECONDS
            return _Update("kept")
        self._retry_at.pop(snap.id_hash, None)
        OIDC_REFRESH.labels(outcome="ok").inc()
        values: dict[str, Any] = {}
        if tokens.refresh_token:
            values["refresh_token_enc"] = rt.box.encrypt_str(
                tokens.refresh_token, context=REFRESH_TOKEN_CONTEXT
            )
        if claims is not None and tokens.id_token is not None:
            values["id_token_enc"] = rt.box.encrypt_str(tokens.id_token, context=ID_TOKEN_CONTEXT)
            values["id_token_expires_at"] = _expiry(claims["exp"])
            sid = claims.get("sid")
            if isinstance(sid, str) and len(sid) <= 255:
                values["idp_sid"] = sid
        lifetime = tokens.expires_in
        if lifetime is None and claims is not None:
            lifetime = int(claims["exp"] - time.time())
        values["access_token_expires_at"] = now + timedelta(seconds=max(lifetime or 300, 1))
        return _Update("refreshed", values=values)

    def _grace(self) -> timedelta:
        try:
            return timedelta(seconds=self._rt.idp.current().settings.refresh_grace_seconds)
        except IdPNotConfigured:
            return timedelta(0)

    @staticmethod
    def _apply(db: Session, row: SessionRow, update: _Update) -> None:
        if update.outcome in ("ended", "reauth") and row.revoked_at is None:
            row.revoked_at = utcnow()
            row.revoked_reason = update.reason or "ended"
        for name, value in update.values.items():
            setattr(row, name, value)


# -- logout --------------------------------------------------------------------------------


def logout_url(rt: Runtime, db: Session, row: SessionRow) -> str | None:
    """RP-Initiated Logout 1.0, 2: the IdP's ``end_session_endpoint`` with ``id_token_hint``,
    ``post_logout_redirect_uri`` (= public URL + ``/login``) and ``client_id``; ``None`` when
    the session is not an OIDC one or the IdP offers no such endpoint (or cannot be reached:
    signing out of Gatehouse never waits for the IdP)."""
    if row.method != "oidc" or row.id_token_enc is None:
        return None
    try:
        ctx = rt.idp.current(db)
        metadata = ctx.metadata()
        id_token = rt.box.decrypt_str(row.id_token_enc, context=ID_TOKEN_CONTEXT)
    except (IdPNotConfigured, OIDCError, DecryptionError):
        IDP_UNAVAILABLE.labels(step="logout").inc()
        return None
    if not metadata.end_session_endpoint or metadata.issuer != row.idp_issuer:
        return None
    params = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": rt.settings.public_url + "/login",
            "client_id": ctx.settings.client_id,
        }
    )
    parts = urlsplit(metadata.end_session_endpoint)
    query = f"{parts.query}&{params}" if parts.query else params
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _seen_jti(rt: Runtime, issuer: str) -> Any:
    """``seen_jti(jti, expires_at)`` for :func:`validate_logout_token`: shared by replicas, so
    that two of them never both accept one logout token."""

    def seen(jti: str, expires_at: int) -> bool:
        return not replay.first_use(rt.db, issuer + "\n" + jti, _expiry(expires_at))

    return seen


def backchannel_logout(rt: Runtime, logout_token: str | None) -> int:
    """Validate a logout token (Back-Channel Logout 1.0, 2.6) and end the sessions it names.

    BCL 2.7: with ``sid``, the session(s) of that IdP session; with only ``sub``, every session
    of that user at this IdP. Returns how many sessions ended (0 when already gone).

    :raises SignInError: ``invalid_request`` / a validation code (400), ``idp_unavailable`` (503)
    """
    if not logout_token or len(logout_token) > 16_384:
        BACKCHANNEL_LOGOUT.labels(outcome="missing_token").inc()
        raise SignInError("The logout_token parameter is missing.", code="invalid_request")
    try:
        ctx = rt.idp.current()
        metadata = ctx.metadata()
        claims = validate_logout_token(
            logout_token,
            metadata=metadata,
            jwks=ctx.jwks,
            client_id=ctx.settings.client_id,
            leeway_seconds=ctx.settings.clock_skew_seconds,
            seen_jti=_seen_jti(rt, metadata.issuer),
        )
    except IdPNotConfigured as exc:
        BACKCHANNEL_LOGOUT.labels(outcome="not_configured").inc()
        raise SignInError(exc.detail, code="idp_not_configured") from exc
    except IdPUnavailableError as exc:
        BACKCHANNEL_LOGOUT.labels(outcome="idp_unavailable").inc()
        IDP_UNAVAILABLE.labels(step="backchannel_logout").inc()
        raise SignInError(
            "The identity provider's keys cannot be fetched right now.",
            code="idp_unavailable",
            status=503,
        ) from exc
    except OIDCError as exc:
        BACKCHANNEL_LOGOUT.labels(outcome=exc.error).inc()
        raise SignInError(exc.description, code=exc.error) from exc
    sid, sub = claims.get("sid"), claims.get("sub")
    with rt.db.session() as db:
        stmt = select(SessionRow).where(
            SessionRow.revoked_at.is_(None), SessionRow.idp_issuer == metadata.issuer
        )
        if sid is not None:
            stmt = stmt.where(SessionRow.idp_sid == sid)
        if sub is not None:
            stmt = stmt.where(SessionRow.idp_subject == sub)
        rows = list(db.scalars(stmt))
        now = utcnow()
        for row in rows:
            row.revoked_at = now
            row.revoked_reason = "backchannel_logout"
        audit.record(
            db,
            Actor.system("idp"),
            "logout.backchannel",
            details={"sessions_ended": len(rows), "by": "sid" if sid is not None else "sub"},
        )
    BACKCHANNEL_LOGOUT.labels(outcome="ok").inc()
    return len(rows)
