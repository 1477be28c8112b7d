"""The redirect URI's work: from the IdP's answer to a Gatehouse session (or a test report).

Order (OIDC Core 3.1.2.7, RFC 9207 2.4, 3.1.3.7): consume the flow → same configuration
version → ``state`` (constant time) → ``iss`` → IdP ``error`` → code exchange → ID token
(signature, iss, aud, azp, alg, exp/iat with leeway, nonce, at_hash, sub) → UserInfo when a
needed claim is missing (its ``sub`` must equal the ID token's) → the IT user → a new session.

The ID token is parsed and verified once, by the validator; its :data:`VerifiedIDTokenClaims`
are stored (encrypted) beside the token, and the session keeper compares a refreshed ID token
with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from gatehouse.domain import audit, sessions, users
from gatehouse.domain.audit import Actor
from gatehouse.domain.crypto import BrowserContext, EncryptionContext, seal
from gatehouse.domain.identity import IdentityRefused, MatchPreview, claims_needed, match_user
from gatehouse.domain.identity import preview_match as _preview_match
from gatehouse.domain.idp import IdPContext
from gatehouse.domain.signin.common import (
    RefusedIdentity,
    SignInError,
    SignInServices,
    expiry,
    idp_unavailable,
    provider_metadata,
    seal_claims,
)
from gatehouse.domain.signin.flow import Flow, consume_flow
from gatehouse.metrics import OIDC_CALLBACK
from gatehouse.oidc import (
    AuthorizationResponseError,
    DiscoveryError,
    IdPErrorResponse,
    IdPUnavailableError,
    ProviderMetadata,
    TokenEndpointError,
    TokenResponse,
    TokenValidationError,
    UserInfoError,
    VerifiedIDTokenClaims,
    exchange_code,
    parse_authorization_response,
)
from gatehouse.store.models import utcnow

#: prompt=none answers that mean "the user must interact": retry interactively (OIDC Core 3.1.2.6)
INTERACTION_ERRORS = frozenset(
    {"login_required", "interaction_required", "consent_required", "account_selection_required"}
)


@dataclass(frozen=True)
class Callback:
    """What the browser brought to the redirect URI."""

    #: the query parameters (each at most once: the route refuses repeated ones)
    params: Mapping[str, str]
    #: the cookie that binds the flow to the browser that started it
    browser_secret: str | None
    ip: str | None
    user_agent: str | None
    #: the session cookie the browser still had: that session ends (the id rotates at sign-in)
    replaces: str | None


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


def _authorization_code(
    flow: Flow, params: Mapping[str, str], metadata: ProviderMetadata
) -> str | Restart:
    """The code of the IdP's answer, after ``state`` and ``iss``; a Restart for ``prompt=none``
    answers that need interaction."""
    if flow.secrets.issuer != metadata.issuer:
        raise SignInError(
            "The identity provider changed while you were signing in. Start again.",
            code="config_changed",
        )
    try:
        return parse_authorization_response(
            params, expected_state=flow.secrets.state, metadata=metadata
        )
    except IdPErrorResponse as exc:
        # An error response never carries a code, so it can only end this attempt; when its
        # iss was missing (exc.issuer_verified is False) it is not even the IdP's word, and
        # the page says no more than "cancelled or refused, try again".
        if flow.prompt == "none" and exc.idp_error in INTERACTION_ERRORS:
            return Restart(flow.return_to)
        if exc.idp_error == "access_denied":
            raise SignInError(
                "You cancelled the sign-in at the identity provider, or it refused you (access "
                "denied). Nothing was changed: try again, or choose another account.",
                code="access_denied",
                status=403,
                title="Sign-in cancelled",
                cancelled=True,
            ) from exc
        who = "The identity provider answered" if exc.issuer_verified else "The sign-in came back"
        detail = f"{who} with the error {exc.idp_error[:64]!r}. Try again, or ask an administrator."
        raise SignInError(detail, code="idp_error", status=403) from exc
    except AuthorizationResponseError as exc:
        raise SignInError(
            f"The answer from the identity provider was refused: {exc.description}",
            code=exc.error,
        ) from exc


def _exchange(ctx: IdPContext, flow: Flow, metadata: ProviderMetadata, code: str) -> TokenResponse:
    try:
        return exchange_code(
            ctx.http,
            metadata,
            ctx.web_client,
            code,
            flow.secrets.redirect_uri,
            flow.secrets.code_verifier,
        )
    except IdPUnavailableError as exc:
        raise idp_unavailable("token") from exc
    except TokenEndpointError as exc:
        raise SignInError(
            f"The identity provider refused to complete the sign-in: {exc.description}",
            code="token_exchange_failed",
            status=502,
        ) from exc


def _verified_claims(ctx: IdPContext, flow: Flow, tokens: TokenResponse) -> VerifiedIDTokenClaims:
    """The one parse of the ID token: signature and every rule of OIDC Core 3.1.3.7."""
    assert tokens.id_token is not None
    try:
        return ctx.id_token_validator().validate(
            tokens.id_token,
            nonce=flow.secrets.nonce,
            access_token=tokens.access_token,
            max_age_seconds=flow.secrets.max_age,
        )
    except IdPUnavailableError as exc:
        raise idp_unavailable("jwks") from exc
    except TokenValidationError as exc:
        raise SignInError(
            f"The identity provider's ID token was refused: {exc.description}",
            code=exc.error,
        ) from exc


def _userinfo(
    ctx: IdPContext,
    metadata: ProviderMetadata,
    claims: VerifiedIDTokenClaims,
    access_token: str,
) -> dict[str, Any] | None:
    """UserInfo, only when the ID token lacks a claim that matching needs."""
    if all(name in claims for name in claims_needed(ctx.settings)) or (
        metadata.userinfo_endpoint is None
    ):
        return None
    try:
        return ctx.userinfo(access_token, str(claims["sub"]))
    except IdPUnavailableError as exc:
        raise idp_unavailable("userinfo") from exc
    except (UserInfoError, TokenValidationError) as exc:
        raise SignInError(
            f"The identity provider's user information was refused: {exc.description}",
            code=exc.error,
        ) from exc


def _authenticate(ctx: IdPContext, flow: Flow, params: Mapping[str, str]) -> _Identity | Restart:
    metadata = provider_metadata(ctx, step="callback")
    code = _authorization_code(flow, params, metadata)
    if isinstance(code, Restart):
        return code
    tokens = _exchange(ctx, flow, metadata, code)
    claims = _verified_claims(ctx, flow, tokens)
    assert tokens.id_token is not None
    userinfo = _userinfo(ctx, metadata, claims, tokens.access_token)
    return _Identity(tokens.id_token, claims, userinfo, tokens)


def _session_fields(
    svc: SignInServices, ctx: IdPContext, identity: _Identity, issuer: str
) -> dict[str, Any]:
    tokens = identity.tokens
    now = utcnow()
    sid = identity.claims.get("sid")
    return {
        "idp_issuer": issuer,
        "idp_subject": identity.claims["sub"],
        "idp_sid": sid if isinstance(sid, str) and len(sid) <= 255 else None,
        "idp_config_version": ctx.version,
        "id_token_enc": svc.box.encrypt_str(
            identity.id_token, context=EncryptionContext.SESSION_ID_TOKEN
        ),
        "id_token_claims_enc": seal_claims(svc.box, identity.claims),
        "id_token_expires_at": expiry(identity.claims["exp"]),
        "refresh_token_enc": svc.box.encrypt_optional(
            tokens.refresh_token or None, context=EncryptionContext.SESSION_REFRESH_TOKEN
        ),
        "access_token_expires_at": now + timedelta(seconds=tokens.expires_in)
        if tokens.expires_in is not None
        else None,
    }


def finish_flow(svc: SignInServices, callback: Callback) -> SignedIn | TestSignIn | Restart:
    """Finish a sign-in from what came back to the redirect URI. Counts every outcome.

    :raises SignInError: with the outcome as ``code``
    """
    try:
        result = _finish(svc, callback)
    except SignInError as exc:
        OIDC_CALLBACK.labels(outcome=exc.code).inc()
        refused = exc.refused
        audit.record_now(
            svc.db.session,
            Actor.anonymous(callback.ip),
            "login.oidc",
            outcome="failure",
            reason=exc.code,
            details={"issuer": refused.issuer, refused.claim: refused.value} if refused else None,
        )
        raise
    OIDC_CALLBACK.labels(
        outcome="ok"
        if isinstance(result, SignedIn)
        else ("test_ok" if isinstance(result, TestSignIn) else "interaction_required")
    ).inc()
    return result


def _finish(svc: SignInServices, callback: Callback) -> SignedIn | TestSignIn | Restart:
    state = callback.params.get("state")
    if not state or len(state) > 512:
        raise SignInError("The answer from the identity provider has no state.", code="bad_state")
    flow, ctx, active = consume_flow(svc, state, callback.browser_secret)
    if ctx.version != flow.config_version:
        raise SignInError(
            "The identity provider configuration changed while you were signing in. Start again.",
            code="config_changed",
        )
    if flow.purpose == "login" and not active:
        raise SignInError("Single sign-on is not active.", code="oidc_not_active", status=409)
    try:
        return _finish_flow(svc, ctx, flow, callback)
    except SignInError as exc:
        if flow.purpose == "login":
            exc.return_to = flow.return_to
        raise


def _finish_flow(
    svc: SignInServices, ctx: IdPContext, flow: Flow, callback: Callback
) -> SignedIn | TestSignIn | Restart:
    identity = _authenticate(ctx, flow, callback.params)
    if isinstance(identity, Restart):
        return identity
    issuer = str(identity.claims["iss"])
    if flow.purpose == "test":
        with svc.db.session() as db:
            preview = _preview_match(db, ctx.settings, issuer, identity.merged)
        return TestSignIn(
            id_token_claims=dict(identity.claims),
            userinfo_claims=identity.userinfo,
            preview=preview,
            config_version=ctx.version,
        )
    return _start_session(svc, ctx, flow, identity, issuer, callback)


def _start_session(
    svc: SignInServices,
    ctx: IdPContext,
    flow: Flow,
    identity: _Identity,
    issuer: str,
    callback: Callback,
) -> SignedIn:
    """The IT user the identity maps to, signed in with a new session (the old one ends)."""
    ip = callback.ip
    try:
        with svc.db.session() as db:
            user = match_user(db, ctx.settings, issuer, identity.merged, ip=ip)
            users.mark_signed_in(user)
            raw, _row = sessions.create_session(
                db,
                user,
                method="oidc",
                limits=svc.session_limits,
                ip=ip,
                user_agent=callback.user_agent,
                replaces=callback.replaces,
                **_session_fields(svc, ctx, identity, issuer),
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
            refused=_refused_identity(svc, ctx, identity, issuer),
        ) from exc
    svc.users.invalidate(user_id)
    return SignedIn(raw_session=raw, user_id=user_id, return_to=flow.return_to)


#: how long a refused sign-in's ID token stays usable for signing out at the IdP
REFUSED_LOGOUT_SECONDS = 600


def _refused_identity(
    svc: SignInServices, ctx: IdPContext, identity: _Identity, issuer: str
) -> RefusedIdentity:
    """Who was refused (the claim users are matched by, else the subject), and the ID token
    sealed for the browser so that "Sign out of the IdP" can send ``id_token_hint``."""
    claim: str = ctx.settings.user_claim
    value = identity.merged.get(claim)
    if not isinstance(value, str) or not value.strip():
        claim, value = "sub", str(identity.claims["sub"])
    sealed = origin = None
    try:
        endpoint = ctx.metadata().end_session_endpoint
    except (IdPUnavailableError, DiscoveryError):
        endpoint = None
    if endpoint:
        parts = urlsplit(endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
        sealed = seal(
            svc.box,
            {"id_token": identity.id_token, "issuer": issuer},
            context=BrowserContext.REFUSED_SIGN_IN,
            seconds=REFUSED_LOGOUT_SECONDS,
        )
    return RefusedIdentity(
        issuer=issuer,
        idp_name=ctx.settings.display_name,
        claim=claim,
        value=value[:320],
        sealed_logout=sealed,
        logout_origin=origin,
    )
