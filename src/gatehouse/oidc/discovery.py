"""OpenID Connect Discovery 1.0: the provider metadata document, fetched and checked.

* the document lives at ``issuer + "/.well-known/openid-configuration"`` (Discovery 4, issuers
  with a path included: the trailing slash of the issuer is dropped before appending);
* its ``issuer`` MUST be identical to the configured issuer (Discovery 4.3) — compared exactly,
  no normalisation of trailing slashes, case or default ports;
* every URL is https, unless insecure http was allowed explicitly *and* the host is a loopback
  address (development and tests).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._http import json_object, send
from .errors import ConfigurationError, DiscoveryError, OIDCError

__all__ = [
    "WELL_KNOWN_PATH",
    "MetadataCache",
    "ProviderMetadata",
    "check_endpoint_url",
    "check_issuer_url",
    "discovery_url",
    "fetch_metadata",
    "is_loopback_host",
]

WELL_KNOWN_PATH = "/.well-known/openid-configuration"

_REQUIRED_FIELDS = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
_OPTIONAL_ENDPOINTS = (
    "userinfo_endpoint",
    "end_session_endpoint",
    "revocation_endpoint",
    "device_authorization_endpoint",
)
_LIST_FIELDS = (
    "id_token_signing_alg_values_supported",
    "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported",
    "scopes_supported",
    "grant_types_supported",
)


def is_loopback_host(host: str) -> bool:
    """``localhost``, an address in 127.0.0.0/8, or ``::1``."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, allow_insecure_http: bool, *, what: str, is_issuer: bool) -> None:
    if not isinstance(url, str) or not url:
        raise ConfigurationError("invalid_url", f"The {what} is not a URL.")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigurationError("invalid_url", f"The {what} is not a valid URL.") from exc
    if not host:
        raise ConfigurationError("invalid_url", f"The {what} has no host.")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("invalid_url", f"The {what} must not contain credentials.")
    if parts.fragment:
        raise ConfigurationError("invalid_url", f"The {what} must not contain a fragment.")
    if is_issuer and parts.query:
        # Discovery 2: "a case-sensitive URL using the https scheme ... and no query or
        # fragment components"
        raise ConfigurationError("invalid_url", f"The {what} must not contain a query.")
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        if not allow_insecure_http:
            raise ConfigurationError(
                "insecure_url", f"The {what} must use https (insecure http is not allowed)."
            )
        if not is_loopback_host(host):
            raise ConfigurationError(
                "insecure_url",
                f"The {what} uses http on a non-loopback host; http is allowed only for "
                "127.0.0.0/8, ::1 and localhost.",
            )
        return
    raise ConfigurationError("invalid_url", f"The {what} must be an https URL.")


def check_issuer_url(url: str, allow_insecure_http: bool) -> None:
    """Raise :class:`ConfigurationError` unless ``url`` is an acceptable issuer identifier.

    https with a host, no query, no fragment, no user info; http only when
    ``allow_insecure_http`` and the host is loopback.
    """
    _check_url(url, allow_insecure_http, what="issuer URL", is_issuer=True)


def check_endpoint_url(url: str, allow_insecure_http: bool, *, what: str = "endpoint") -> None:
    """Raise :class:`ConfigurationError` unless ``url`` is an acceptable endpoint URL.

    Same rules as the issuer, except that a query is allowed (RFC 6749 3.1).
    """
    _check_url(url, allow_insecure_http, what=what, is_issuer=False)


def discovery_url(issuer: str) -> str:
    """``issuer`` without its trailing slash, followed by ``/.well-known/openid-configuration``."""
    return issuer.rstrip("/") + WELL_KNOWN_PATH


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of the OpenID Provider metadata that the relying party uses.

    List-valued fields are ``None`` when the provider did not advertise them (which differs from
    an empty list: the specification gives defaults for some absent fields).
    """

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    revocation_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    id_token_signing_alg_values_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    code_challenge_methods_supported: tuple[str, ...] | None = None
    scopes_supported: tuple[str, ...] | None = None
    grant_types_supported: tuple[str, ...] | None = None
    authorization_response_iss_parameter_supported: bool = False
    backchannel_logout_supported: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(
        cls, document: Mapping[str, Any], *, allow_insecure_http: bool
    ) -> ProviderMetadata:
        """Check a metadata document's fields and types; raise :class:`DiscoveryError`.

        The issuer comparison with the configured issuer is done by :func:`fetch_metadata`.
        """
        for name in _REQUIRED_FIELDS:
            value = document.get(name)
            if not isinstance(value, str) or not value:
                raise DiscoveryError(
                    "missing_metadata_field",
                    f"The provider metadata lacks the required field {name!r}.",
                )
        optional: dict[str, str | None] = {}
        for name in _OPTIONAL_ENDPOINTS:
            value = document.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise DiscoveryError(
                    "invalid_metadata_field", f"The provider metadata field {name!r} is invalid."
                )
            optional[name] = value
        lists: dict[str, tuple[str, ...] | None] = {}
        for name in _LIST_FIELDS:
            value = document.get(name)
            if value is None:
                lists[name] = None
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                lists[name] = tuple(value)
            else:
                raise DiscoveryError(
                    "invalid_metadata_field",
                    f"The provider metadata field {name!r} is not a list of strings.",
                )
        flags: dict[str, bool] = {}
        for name in (
            "authorization_response_iss_parameter_supported",
            "backchannel_logout_supported",
        ):
            value = document.get(name, False)
            if not isinstance(value, bool):
                raise DiscoveryError(
                    "invalid_metadata_field", f"The provider metadata field {name!r} is not a bool."
                )
            flags[name] = value

        try:
            check_issuer_url(document["issuer"], allow_insecure_http)
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                check_endpoint_url(document[name], allow_insecure_http, what=name)
            for name, url in optional.items():
                if url is not None:
                    check_endpoint_url(url, allow_insecure_http, what=name)
        except ConfigurationError as exc:
            raise DiscoveryError(exc.error, exc.description) from exc

        return cls(
            issuer=document["issuer"],
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            jwks_uri=document["jwks_uri"],
            userinfo_endpoint=optional["userinfo_endpoint"],
            end_session_endpoint=optional["end_session_endpoint"],
            revocation_endpoint=optional["revocation_endpoint"],
            device_authorization_endpoint=optional["device_authorization_endpoint"],
            id_token_signing_alg_values_supported=lists["id_token_signing_alg_values_supported"],
            token_endpoint_auth_methods_supported=lists["token_endpoint_auth_methods_supported"],
            code_challenge_methods_supported=lists["code_challenge_methods_supported"],
            scopes_supported=lists["scopes_supported"],
            grant_types_supported=lists["grant_types_supported"],
            authorization_response_iss_parameter_supported=flags[
                "authorization_response_iss_parameter_supported"
            ],
            backchannel_logout_supported=flags["backchannel_logout_supported"],
            raw=dict(document),
        )


def fetch_metadata(
    http: httpx.Client, issuer: str, *, allow_insecure_http: bool
) -> ProviderMetadata:
    """Fetch and check the provider metadata of ``issuer`` (OpenID Connect Discovery 1.0, 4).

    :raises ConfigurationError: the configured issuer itself is not acceptable
    :raises IdPUnavailableError: network error, timeout or 5xx
    :raises DiscoveryError: any other failure (4xx, not JSON, missing field, issuer mismatch,
        http endpoint)
    """
    check_issuer_url(issuer, allow_insecure_http)
    response = send(http, "GET", discovery_url(issuer), what="discovery document")
    if response.status_code != 200:
        raise DiscoveryError(
            "discovery_failed",
            f"The discovery document answered HTTP {response.status_code}.",
        )
    document = json_object(response)
    if document is None:
        raise DiscoveryError("discovery_failed", "The discovery document is not a JSON object.")
    # Discovery 4.3: "The issuer value returned MUST be identical to the Issuer URL that was
    # used as the prefix to /.well-known/openid-configuration to retrieve the configuration
    # information." Exact string comparison: a trailing slash makes a different issuer.
    if document.get("issuer") != issuer:
        raise DiscoveryError(
            "issuer_mismatch",
            "The issuer in the discovery document is not identical to the configured issuer.",
        )
    return ProviderMetadata.from_dict(document, allow_insecure_http=allow_insecure_http)


class MetadataCache:
    """Provider metadata kept for ``ttl`` seconds; a failed refresh keeps the last good copy.

    Thread-safe. After a failed refresh the next attempt waits ``retry_after`` seconds, so an
    IdP outage does not turn into one discovery request per login.
    """

    def __init__(
        self,
        http: httpx.Client,
        issuer: str,
        *,
        allow_insecure_http: bool,
        ttl: float = 3600.0,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_issuer_url(issuer, allow_insecure_http)
        self._http = http
        self.issuer = issuer
        self._allow_insecure_http = allow_insecure_http
        self._ttl = ttl
        self._retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._fetched_at = 0.0
        self._last_attempt: float | None = None

    def get(self) -> ProviderMetadata:
        """The cached metadata, refreshed when older than ``ttl``.

        :raises IdPUnavailableError | DiscoveryError: only when no good copy exists
        """
        with self._lock:
            now = self._clock()
            fresh = self._metadata is not None and now - self._fetched_at < self._ttl
            if fresh:
                assert self._metadata is not None
                return self._metadata
            if (
                self._metadata is not None
                and self._last_attempt is not None
                and now - self._last_attempt < self._retry_after
            ):
                return self._metadata
            self._last_attempt = now
            try:
                metadata = fetch_metadata(
                    self._http, self.issuer, allow_insecure_http=self._allow_insecure_http
                )
            except OIDCError:
                if self._metadata is not None:
                    return self._metadata
                raise
            self._metadata = metadata
            self._fetched_at = now
            return metadata

    def invalidate(self) -> None:
        """Forget the cached metadata (e.g. after the IdP configuration changed)."""
        with self._lock:
            self._metadata = None
            self._last_attempt = None
