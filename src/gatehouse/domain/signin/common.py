"""What every step of the console's sign-in shares: its services, its error, the IdP's metadata,
and the verified ID-token claims at rest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

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
    VerifiedIDTokenClaims,
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


def idp_unavailable(step: str) -> SignInError:
    """The IdP could not be reached during ``step`` (counted): 503, local admins still work."""
    IDP_UNAVAILABLE.labels(step=step).inc()
    return SignInError(
        "The identity provider cannot be reached right now. Try again in a few minutes; "
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
