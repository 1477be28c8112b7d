""" "Test the configuration": each check a name, a mark and a sentence, stored per version.

The checks fetch everything afresh (no cache), so a test says what the IdP answers *now*:

``discovery``      the discovery document is reachable and well-formed (OIDC Discovery 4)
``issuer``         its ``issuer`` is identical to the configured issuer (Discovery 4.3)
``endpoints``      authorization, token and JWKS endpoints present, https (or allowed http)
``jwks``           the key set holds at least one usable signing key for an advertised alg
``signing_algs``   an asymmetric ID token algorithm is advertised (``none``/HMAC never count)
``client_auth``    the configured client authentication method is supported
``pkce``           PKCE S256 is supported (Gatehouse always sends it)
``scopes``         ``openid`` is supported (``offline_access`` reported when offered)
``logout``         RP-initiated and back-channel logout support (informative)
``redirect_uri``   Gatehouse's own redirect URI is https (or allowed http on loopback)

A failed ``discovery`` or ``issuer`` stops the run: nothing else can be trusted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy.orm import Session

from gatehouse.domain import audit
from gatehouse.domain.audit import Actor
from gatehouse.domain.idp import IdPContext
from gatehouse.domain.idp_state import get_state
from gatehouse.metrics import IDP_UNAVAILABLE
from gatehouse.oidc import (
    ConfigurationError,
    DiscoveryError,
    IdPUnavailableError,
    JWKSCache,
    OIDCError,
    ProviderMetadata,
    check_endpoint_url,
    fetch_metadata,
)
from gatehouse.oidc._algs import ALG_KEY_REQUIREMENTS, allowed_algorithms
from gatehouse.store.models import utcnow

__all__ = ["Check", "TestReport", "record_report", "run_checks"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class TestReport:
    version: int
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "version": self.version, "checks": [asdict(c) for c in self.checks]}


def _discover(ctx: IdPContext) -> tuple[list[Check], ProviderMetadata | None]:
    issuer = ctx.settings.issuer
    try:
        metadata = fetch_metadata(ctx.http, issuer, allow_insecure_http=ctx.allow_insecure_http)
    except IdPUnavailableError as exc:
        IDP_UNAVAILABLE.labels(step="test").inc()
        return [Check("discovery", False, exc.description)], None
    except DiscoveryError as exc:
        if exc.error == "issuer_mismatch":
            return [
                Check("discovery", True, "The discovery document was fetched."),
                Check(
                    "issuer",
                    False,
                    f"The discovery document names another issuer than {issuer!r}; the two "
                    "must be identical, character for character (trailing slash included).",
                ),
            ], None
        return [Check("discovery", False, exc.description)], None
    except ConfigurationError as exc:
        return [Check("discovery", False, exc.description)], None
    return [
        Check("discovery", True, "The discovery document was fetched and is well-formed."),
        Check("issuer", True, f"The issuer is exactly {issuer}."),
    ], metadata


def _endpoints(metadata: ProviderMetadata) -> Check:
    # from_dict already refused http endpoints that are not allowed; say what is there.
    missing = [name for name in ("userinfo_endpoint",) if getattr(metadata, name) is None]
    detail = "Authorization, token and JWKS endpoints are present and use an allowed scheme."
    if missing:
        detail += " No UserInfo endpoint: every claim Gatehouse needs must be in the ID token."
    return Check("endpoints", True, detail)


def _jwks(ctx: IdPContext, metadata: ProviderMetadata) -> list[Check]:
    algs = allowed_algorithms(metadata.id_token_signing_alg_values_supported)
    checks = [
        Check(
            "signing_algs",
            bool(algs),
            f"ID tokens are signed with {', '.join(sorted(algs))}."
            if algs
            else "The IdP advertises no asymmetric ID token algorithm (none and HMAC are refused).",
        )
    ]
    cache = JWKSCache(ctx.http, metadata.jwks_uri)
    try:
        cache.refresh()
    except OIDCError as exc:
        if isinstance(exc, IdPUnavailableError):
            IDP_UNAVAILABLE.labels(step="test").inc()
        checks.append(
            Check("jwks", False, "The JWKS holds no usable signing key (or was unreachable).")
        )
        return checks
    keys = cache.key_set
    usable = 0
    for key in keys.keys if keys is not None else []:
        for alg in algs:
            kty, curves = ALG_KEY_REQUIREMENTS[alg]
            if key.key_type == kty and (curves is None or key.get("crv") in curves):
                usable += 1
                break
    checks.append(
        Check(
            "jwks",
            usable > 0,
            f"The JWKS holds {usable} usable signing key(s)."
            if usable
            else "The JWKS holds no key that fits an advertised signing algorithm.",
        )
    )
    return checks


def _client_auth(ctx: IdPContext, metadata: ProviderMetadata) -> Check:
    method = ctx.settings.token_endpoint_auth_method
    # OIDC Discovery 3: "If omitted, the default is client_secret_basic".
    supported = metadata.token_endpoint_auth_methods_supported or ("client_secret_basic",)
    if method in supported:
        return Check("client_auth", True, f"The token endpoint accepts {method}.")
    return Check(
        "client_auth",
        False,
        f"The token endpoint does not list {method}; it offers {', '.join(supported)}.",
    )


def _pkce(metadata: ProviderMetadata) -> Check:
    methods = metadata.code_challenge_methods_supported
    if methods is None:
        return Check(
            "pkce",
            True,
            "The IdP does not advertise PKCE methods; Gatehouse sends S256 anyway.",
        )
    if "S256" in methods:
        return Check("pkce", True, "PKCE with S256 is supported.")
    return Check("pkce", False, "The IdP does not support PKCE S256, which Gatehouse requires.")


def _scopes(ctx: IdPContext, metadata: ProviderMetadata) -> Check:
    supported = metadata.scopes_supported
    if supported is None:
        return Check("scopes", True, "The IdP does not list its scopes; openid is assumed.")
    if "openid" not in supported:
        return Check("scopes", False, "The IdP does not list the openid scope.")
    unknown = [s for s in ctx.settings.scopes if s not in supported]
    detail = f"Gatehouse will ask for {' '.join(ctx.settings.request_scopes(metadata))}."
    if unknown:
        detail += f" Not listed by the IdP: {' '.join(unknown)}."
    return Check("scopes", True, detail)


def _logout(metadata: ProviderMetadata) -> Check:
    parts = []
    if metadata.end_session_endpoint:
        parts.append("Signing out also signs out at the IdP (RP-initiated logout).")
    else:
        parts.append("No end_session_endpoint: signing out ends only the Gatehouse session.")
    if metadata.backchannel_logout_supported:
        parts.append("The IdP can end Gatehouse sessions (back-channel logout).")
    return Check("logout", True, " ".join(parts))


def _redirect_uri(ctx: IdPContext, public_url: str) -> Check:
    uri = public_url + "/auth/oidc/callback"
    try:
        check_endpoint_url(uri, ctx.allow_insecure_http, what="redirect URI")
    except ConfigurationError as exc:
        return Check("redirect_uri", False, exc.description)
    return Check("redirect_uri", True, f"Register {uri} as the web client's redirect URI.")


def run_checks(ctx: IdPContext, *, public_url: str) -> TestReport:
    """Run every check against the IdP of ``ctx`` (network calls; no database)."""
    checks, metadata = _discover(ctx)
    if metadata is not None:
        checks.append(_endpoints(metadata))
        checks.extend(_jwks(ctx, metadata))
        checks.append(_client_auth(ctx, metadata))
        checks.append(_pkce(metadata))
        checks.append(_scopes(ctx, metadata))
        checks.append(_logout(metadata))
    checks.append(_redirect_uri(ctx, public_url))
    return TestReport(version=ctx.version, checks=tuple(checks))


def record_report(db: Session, actor: Actor, report: TestReport) -> None:
    """Store the result against its configuration version (activation reads it) and audit."""
    state = get_state(db, for_update=True)
    state.last_test_version = report.version
    state.last_test_ok = report.ok
    state.last_test_at = utcnow()
    state.last_test_report = [asdict(c) for c in report.checks]
    audit.record(
        db,
        actor,
        "idp.test",
        outcome="success" if report.ok else "failure",
        target_type="idp_config",
        target_id=report.version,
        details={"failed": [c.name for c in report.checks if not c.ok]},
    )
