"""Keeping a signed-in session fresh: the silent refresh chain.

    Gatehouse token still valid (60 s margin)  → use it
    otherwise, under the cache lock (re-read first: another command may have just renewed):
        IdP refresh grant → store the rotated refresh token at once (the old one is spent)
        → validate the new ID token against the first one (OIDC Core 12.2)
        → exchange it at ``POST /api/v1/auth/token`` → store the new Gatehouse token
        (no new ID token, as OIDC Core 12.2 allows: ``POST /api/v1/auth/token/renew`` with the
        Gatehouse token held and the new IdP access token)

When the IdP refuses (``invalid_grant``: expired, revoked, user disabled) or the server refuses
the exchange (account disabled or unknown), the session is forgotten and :class:`SessionEnded`
says "Your session for SERVER has ended; run `gatehouse login SERVER`".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from gatehouse import oidc
from gatehouse.oidc import (
    ClientCredentials,
    IdPUnavailableError,
    JWKSCache,
    OIDCError,
    ProviderMetadata,
    RefreshRefusedError,
    TokenEndpointError,
    TokenResponse,
    VerifiedIDTokenClaims,
)

from ._cache import StoredSession, TokenCache, updated
from ._errors import GatehouseClientError, NotSignedIn, SessionEnded
from ._server import (
    ExchangeRefused,
    GatehouseToken,
    allows_insecure_http,
    exchange_id_token,
    new_http,
    renew_token,
)

#: Renew when less than this is left, so a request never leaves with a token about to lapse.
MIN_VALIDITY_SECONDS = 60.0
CLIENT_LEEWAY_SECONDS = 60
_KEPT_CLAIMS = ("iss", "sub", "aud", "azp", "auth_time", "nonce")


def kept_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """The claims OIDC Core 12.2 compares a refreshed ID token with."""
    return {k: claims[k] for k in _KEPT_CLAIMS if k in claims}


class ProviderCache:
    """Provider metadata and keys per issuer, fetched once per process."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http
        self._lock = threading.Lock()
        self._items: dict[str, tuple[ProviderMetadata, JWKSCache]] = {}

    def get(self, issuer: str, *, allow_insecure_http: bool) -> tuple[ProviderMetadata, JWKSCache]:
        with self._lock:
            item = self._items.get(issuer)
            if item is None:
                metadata = oidc.fetch_metadata(
                    self._http, issuer, allow_insecure_http=allow_insecure_http
                )
                item = (metadata, JWKSCache(self._http, metadata.jwks_uri))
                self._items[issuer] = item
            return item


class TokenSource:
    """Fresh Gatehouse access tokens for one server, from the shared :class:`TokenCache`."""

    def __init__(
        self,
        server: str,
        *,
        cache: TokenCache | None = None,
        http: httpx.Client | None = None,
        providers: ProviderCache | None = None,
        min_validity: float = MIN_VALIDITY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self.cache = cache or TokenCache()
        self.http = http or new_http()
        self.providers = providers or ProviderCache(self.http)
        self.min_validity = min_validity
        self._clock = clock
        self._lock = threading.Lock()

    def session(self) -> StoredSession:
        found = self.cache.load(self.server)
        if found is None:
            raise NotSignedIn(self.server)
        return found

    def access_token(self, *, rejected: str | None = None) -> str:
        """A token valid for at least ``min_validity`` seconds, renewed when needed.

        :param rejected: a token the server just answered 401 to; it is renewed even if it
            looks valid (revoked keys, clock skew), unless another command already replaced it
        """
        current = self.session()
        if rejected is None and current.valid_for(self.min_validity, self._clock()):
            return current.access_token
        with self._lock, self.cache.lock(self.server):
            current = self.session()  # re-read: another command may have renewed meanwhile
            now = self._clock()
            if rejected is None and current.valid_for(self.min_validity, now):
                return current.access_token
            if (
                rejected is not None
                and current.access_token != rejected
                and current.valid_for(0, now)
            ):
                return current.access_token
            return self._renew(current).access_token

    def _gatehouse_token(self, session: StoredSession, answer: TokenResponse) -> GatehouseToken:
        """A new Gatehouse token for the IdP's refresh answer: an exchange of its new ID token,
        or a renewal when the IdP sent none (OIDC Core 12.2 allows that)."""
        try:
            if answer.id_token is None:
                return renew_token(
                    self.http, self.server, session.access_token, answer.access_token
                )
            return exchange_id_token(self.http, self.server, answer.id_token, answer.access_token)
        except ExchangeRefused as exc:
            if exc.status in (401, 403):
                self.cache.delete(self.server)
                raise SessionEnded(self.server, exc.message) from exc
            raise

    def _renew(self, session: StoredSession) -> StoredSession:
        if not session.renewable or not session.issuer or not session.client_id:
            self.cache.delete(self.server)
            raise SessionEnded(self.server, "Password sessions cannot be renewed.", local=True)
        insecure = allows_insecure_http(self.server)
        client_id = session.client_id
        client = ClientCredentials(client_id=client_id, auth_method="none")
        try:
            metadata, jwks = self.providers.get(session.issuer, allow_insecure_http=insecure)
        except OIDCError as exc:
            raise GatehouseClientError(
                f"Could not read the identity provider's configuration ({exc.description}); "
                "your session is kept — try again shortly.",
                code="idp_unavailable",
            ) from exc
        try:
            assert session.refresh_token is not None
            answer = oidc.refresh(self.http, metadata, client, session.refresh_token)
        except RefreshRefusedError as exc:
            self.cache.delete(self.server)
            raise SessionEnded(self.server, "The identity provider refused to renew it.") from exc
        except IdPUnavailableError as exc:
            raise GatehouseClientError(
                f"The identity provider is unreachable right now ({exc.description}); your "
                "session is kept — try again shortly.",
                code="idp_unavailable",
            ) from exc
        except TokenEndpointError as exc:
            self.cache.delete(self.server)
            raise SessionEnded(self.server, exc.description) from exc
        if answer.refresh_token:
            # Rotation: the old refresh token is spent the moment the IdP answered.
            session = updated(session, refresh_token=answer.refresh_token)
            self.cache.save(session)
        try:
            claims = oidc.validate_refreshed_id_token(
                answer.id_token,
                VerifiedIDTokenClaims(dict(session.id_claims)),
                metadata=metadata,
                jwks=jwks,
                client_id=client_id,
                leeway_seconds=CLIENT_LEEWAY_SECONDS,
            )
        except OIDCError as exc:
            self.cache.delete(self.server)
            raise SessionEnded(self.server, exc.description) from exc
        token = self._gatehouse_token(session, answer)
        session = updated(
            session,
            access_token=token.access_token,
            access_expires_at=self._clock() + token.expires_in,
            id_claims=kept_claims(dict(claims or session.id_claims)),
        )
        self.cache.save(session)
        return session
