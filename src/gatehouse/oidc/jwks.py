"""The provider's signing keys (JWK Set, RFC 7517), cached.

Rules (after pyjwt ``jwks_client.py`` and warehouse ``_refresh_keyset``):

* the key set is kept ``lifetime`` seconds, then refetched on next use;
* an unknown ``kid`` triggers one refetch, at most once per ``refetch_cooldown`` seconds;
* a key set with no usable key is never cached;
* a failed refresh keeps the old keys; :class:`IdPUnavailableError` only when there are none;
* keys of an unknown ``kty``, symmetric keys, ``use: enc`` keys and keys without the ``verify``
  operation are ignored (RFC 7517 5: "ignore JWKs ... that it does not understand");
* every fetch has a timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key, KeySet

from ._algs import ALG_KEY_REQUIREMENTS
from ._http import json_object, send
from .errors import IdPUnavailableError, OIDCError, TokenValidationError

__all__ = ["JWKSCache"]

logger = logging.getLogger(__name__)

_VERIFYING_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
_SIGNING_CURVES = frozenset({"P-256", "P-384", "P-521", "Ed25519", "Ed448"})


@dataclass(frozen=True, slots=True)
class _Entry:
    key: Key
    #: the kid as published; joserfc fills a missing kid with the thumbprint, we must not
    declared_kid: str | None


def _parse_key_set(document: dict[str, Any] | None) -> list[_Entry]:
    """The usable signature-verification keys of a JWK Set document (possibly none)."""
    if document is None or not isinstance(document.get("keys"), list):
        return []
    entries: list[_Entry] = []
    for data in document["keys"]:
        if not isinstance(data, dict):
            continue
        if data.get("kty") not in _VERIFYING_KEY_TYPES:
            continue  # unknown kty, or "oct": never verify with a symmetric key from a JWKS
        if data.get("use", "sig") != "sig":
            continue
        key_ops = data.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            continue
        if data["kty"] != "RSA" and data.get("crv") not in _SIGNING_CURVES:
            continue
        kid = data.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        public = {k: v for k, v in data.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            key = JWKRegistry.import_key(public)
        except (JoseError, ValueError, TypeError):
            continue
        entries.append(_Entry(key=key, declared_kid=kid))
    return entries


def _fits(entry: _Entry, alg: str) -> bool:
    """Whether the key's type and curve can verify ``alg`` (its declared alg checked apart)."""
    requirement = ALG_KEY_REQUIREMENTS.get(alg)
    if requirement is None:
        return False
    kty, curves = requirement
    if entry.key.key_type != kty:
        return False
    return curves is None or entry.key.get("crv") in curves


class JWKSCache:
    """Cache of one provider's JWK Set.

    Construct one per provider configuration and share it between requests (thread-safe)::

        jwks = JWKSCache(http, metadata.jwks_uri)

    :param http: the client used for fetches (timeouts are set on every request)
    :param jwks_uri: the provider's ``jwks_uri`` (already checked by discovery)
    :param lifetime: seconds a fetched key set is used before being refetched
    :param refetch_cooldown: minimum seconds between two fetches (unknown kid, failed refresh)
    :param clock: monotonic clock in seconds (tests pass a fake)
    """

    def __init__(
        self,
        http: httpx.Client,
        jwks_uri: str,
        lifetime: float = 3600.0,
        refetch_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.jwks_uri = jwks_uri
        self._lifetime = lifetime
        self._cooldown = refetch_cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None

    @property
    def key_set(self) -> KeySet | None:
        """The cached keys as a joserfc :class:`KeySet` (``None`` before the first fetch)."""
        with self._lock:
            return KeySet([e.key for e in self._entries]) if self._entries else None

    def get_key(self, kid: str | None, alg: str) -> Key:
        """The key to verify a JWS with header ``kid`` / ``alg``.

        * with a ``kid``: the key published with that kid; or the only key of the set when that
          key was published without a kid;
        * without a ``kid``: the only key of the set (OIDC Core 10.1: "If there are multiple
          keys in the referenced JWK Set document, a kid value MUST be provided");
        * the key's type and curve must fit ``alg``, and its ``alg``, if declared, must be it.

        :raises TokenValidationError: ``unknown_kid``, ``kid_required`` or ``key_alg_mismatch``
        :raises IdPUnavailableError: no keys at all could be fetched
        """
        with self._lock:
            self._ensure_keys()
            found = self._select(kid, alg)
            if found is None and self._may_fetch():
                self._refresh()
                found = self._select(kid, alg)
        if found is None:
            if kid is None:
                raise TokenValidationError(
                    "kid_required",
                    "The token has no kid and the provider publishes several keys.",
                )
            raise TokenValidationError(
                "unknown_kid", "The token's kid is not among the provider's signing keys."
            )
        declared_alg = found.key.get("alg")
        if declared_alg is not None and declared_alg != alg:
            raise TokenValidationError(
                "key_alg_mismatch",
                "The token's alg differs from the alg its signing key is published with.",
            )
        return found.key

    def refresh(self) -> None:
        """Fetch the key set now (ignores the cooldown); keeps the old keys on failure."""
        with self._lock:
            self._refresh()
            if not self._entries:
                raise IdPUnavailableError(
                    "jwks_unavailable", "The provider's signing keys could not be fetched."
                )

    # -- internals (called with the lock held) ------------------------------------------

    def _select(self, kid: str | None, alg: str) -> _Entry | None:
        entries = self._entries
        if kid is not None:
            by_kid = [e for e in entries if e.declared_kid == kid]
            if by_kid:
                fitting = [e for e in by_kid if _fits(e, alg)]
                # a kid shared by keys of different types: take the one that fits the alg;
                # none fits: return one anyway so that verification fails on the key type
                return fitting[0] if fitting else by_kid[0]
            if len(entries) == 1 and entries[0].declared_kid is None:
                return entries[0]
            return None
        if len(entries) == 1:
            return entries[0]
        return None

    def _may_fetch(self) -> bool:
        return self._last_attempt is None or self._clock() - self._last_attempt >= self._cooldown

    def _ensure_keys(self) -> None:
        stale = self._fetched_at is None or self._clock() - self._fetched_at >= self._lifetime
        if stale and (not self._entries or self._may_fetch()):
            self._refresh()
        if not self._entries:
            raise IdPUnavailableError(
                "jwks_unavailable", "The provider's signing keys could not be fetched."
            )

    def _refresh(self) -> None:
        """Fetch; replace the keys only with a non-empty set; swallow failures (keep old keys)."""
        self._last_attempt = self._clock()
        try:
            response = send(self._http, "GET", self.jwks_uri, what="JWKS endpoint")
        except OIDCError as exc:
            logger.warning("jwks refresh failed", extra={"error": exc.error})
            return
        if response.status_code != 200:
            logger.warning("jwks refresh failed", extra={"status": response.status_code})
            return
        entries = _parse_key_set(json_object(response))
        if not entries:
            logger.warning("jwks refresh returned no usable key")
            return  # never cache an empty key set
        self._entries = entries
        self._fetched_at = self._last_attempt
