"""What every step of the console's sign-in shares: its services, its error, the IdP's metadata,
and the verified ID-token claims at rest."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from gatehouse.domain.access_tokens import AccessTokenService
from gatehouse.domain.crypto import EncryptionContext, SecretBox
from gatehouse.domain.errors import DomainError
from gatehouse.domain.idp import IdPContext, IdPService
from gatehouse.domain.sessions import SessionLimits
from gatehouse.domain.user_cache import UserCache
from gatehouse.metrics import IDP_UNAVAILABLE
from gatehouse.oidc import (
    DiscoveryError,
    IdPUnavailableError,
    ProviderMetadata,
    Reachability,
    VerifiedIDTokenClaims,
    probe,
)
from gatehouse.store.db import Database


@dataclass(frozen=True)
class SignInServices:
    """What signing in through the IdP uses, built once by the runtime (``rt.signin``).

    Every function of :mod:`gatehouse.domain.signin` and of :mod:`gatehouse.domain.token_exchange`
    takes it as its first argument: the domain gets the services it needs, never the runtime.
    """

    db: Database
    box: SecretBox
    idp: IdPService
    users: UserCache
    tokens: AccessTokenService
    session_limits: SessionLimits
    #: ``GATEHOUSE_PUBLIC_URL``: the redirect URI and the post-logout redirect are built on it
    public_url: str
    #: the last probe of the IdP's authorization endpoint (``start_flow`` asks it)
    reachability: ReachabilityCache = field(default_factory=lambda: ReachabilityCache())


class ReachabilityCache:
    """Whether the IdP answers, probed at most once per ``ok_seconds`` while it does (keyed by
    the URL's origin; thread-safe). A failed probe is kept only ``failed_seconds`` (default: not
    at all), so sign-ins work again the moment the IdP is back; during an outage a start costs
    at most the probe's 2-second connect timeout, and starts are rate-limited per address.

    Discovery is cached for an hour, so without this a sign-in during an outage would send the
    browser straight to a dead IdP and its "refused to connect" page; a HEAD with a 2-second
    connect timeout, at most every few seconds, costs nothing next to that. Any other request
    that finds the IdP unreachable (a session refresh) calls :meth:`forget`, so the next start
    probes again at once.
    """

    def __init__(
        self,
        *,
        ok_seconds: float = 5.0,
        failed_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ok_seconds = ok_seconds
        self.failed_seconds = failed_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, Reachability]] = {}

    def check(self, http: httpx.Client, url: str) -> Reachability:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        now = self._clock()
        with self._lock:
            cached = self._last.get(key)
        if cached is not None:
            at, result = cached
            if now - at < (self.ok_seconds if result.ok else self.failed_seconds):
                return result
        result = probe(http, url)
        with self._lock:
            self._last[key] = (self._clock(), result)
        return result

    def forget(self) -> None:
        """Drop every cached answer (the IdP just failed another request)."""
        with self._lock:
            self._last.clear()


@dataclass(frozen=True)
class RefusedIdentity:
    """The IdP account that signed in and that Gatehouse refused: named on the page, so that a
    person stuck in the wrong account sees which one it was (never a token)."""

    issuer: str
    #: the IdP's display name (the sign-in button's text)
    idp_name: str
    #: the claim Gatehouse recognises users by (``preferred_username``, ``email``; ``sub`` when
    #: the identity is already bound) and its value
    claim: str
    value: str
    #: the refused sign-in's ID token, sealed for the browser (``crypto.seal``) only to sign out
    #: at the IdP with ``id_token_hint``; None when the IdP offers no end_session_endpoint
    sealed_logout: str | None = field(default=None, repr=False)
    #: the origin of the IdP's end_session_endpoint (the page's form goes on there)
    logout_origin: str | None = None


class SignInError(DomainError):
    """A sign-in attempt failed; ``code`` is also the metrics outcome, ``title`` heads the page.

    ``refused``: set when the IdP signed someone in whom Gatehouse refuses (the page then offers
    another account and signing out at the IdP); ``cancelled``: the IdP sent the user back with
    ``access_denied`` (they pressed Cancel, or the IdP denied access).
    """

    def __init__(
        self,
        detail: str,
        *,
        code: str,
        status: int = 400,
        title: str = "Sign-in failed",
        refused: RefusedIdentity | None = None,
        cancelled: bool = False,
    ) -> None:
        super().__init__(detail, code=code)
        self.status = status
        self.title = title
        self.refused = refused
        self.cancelled = cancelled
        #: where the failed sign-in was going (set once its flow is known): "Try again" goes there
        self.return_to = "/"


def idp_unavailable(step: str, reason: str | None = None) -> SignInError:
    """The IdP could not be reached during ``step`` (counted): 503, local admins still work.
    ``reason`` (host and cause, from the probe) is named on the page."""
    IDP_UNAVAILABLE.labels(step=step).inc()
    why = f" ({reason})" if reason else ""
    return SignInError(
        f"The identity provider cannot be reached right now{why}. Try again in a few minutes; "
        "local admins can still sign in with their password.",
        code="idp_unavailable",
        status=503,
        title="Identity provider unavailable",
    )


def provider_metadata(ctx: IdPContext, *, step: str) -> ProviderMetadata:
    """The IdP's discovery document, or the :class:`SignInError` that says why not."""
    try:
        return ctx.metadata()
    except IdPUnavailableError as exc:
        raise idp_unavailable(step) from exc
    except DiscoveryError as exc:
        raise SignInError(
            "The identity provider's configuration document is not acceptable ("
            + exc.description
            + "). An administrator must fix the configuration.",
            code="discovery_failed",
            status=502,
            title="Identity provider misconfigured",
        ) from exc


def expiry(seconds: float | int) -> datetime:
    """A JWT time claim (seconds since the epoch) as an aware datetime."""
    return datetime.fromtimestamp(float(seconds), UTC)


def seal_claims(box: SecretBox, claims: VerifiedIDTokenClaims) -> bytes:
    """The verified claims as stored beside the ID token (``sessions.id_token_claims_enc``).

    Stored rather than decoded again from the stored ID token: the validator is the one place
    that parses an ID token, and what it returned is what the next refresh compares against.
    """
    return box.encrypt_str(
        json.dumps(claims, separators=(",", ":")),
        context=EncryptionContext.SESSION_ID_TOKEN_CLAIMS,
    )


def open_claims(box: SecretBox, blob: bytes) -> VerifiedIDTokenClaims:
    """Claims written by :func:`seal_claims`: verified when stored, and the AES-GCM tag under
    their own context proves they are what was stored.

    :raises DecryptionError | ValueError: not a value :func:`seal_claims` wrote
    """
    data = json.loads(box.decrypt_str(blob, context=EncryptionContext.SESSION_ID_TOKEN_CLAIMS))
    if not isinstance(data, dict):
        raise ValueError("stored ID-token claims are not a JSON object")
    return VerifiedIDTokenClaims(data)
