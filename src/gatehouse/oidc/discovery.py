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
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

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


#: An advertised endpoint or a required field: a non-empty string (URL rules in the validator).
URL = Annotated[str, Field(min_length=1, strict=True)]
Flag = Annotated[bool, Field(strict=True)]


class ProviderMetadata(BaseModel):
    """The parts of the OpenID Provider metadata that the relying party uses (immutable).

    List-valued fields are ``None`` when the provider did not advertise them (which differs from
    an empty list: the specification gives defaults for some absent fields). Every URL is held
    to :func:`check_endpoint_url` (the issuer to :func:`check_issuer_url`), with
    ``allow_insecure_http`` read from the validation context: without one, http is refused.
    ``raw`` keeps the whole document (for fields this model does not name).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    issuer: URL
    authorization_endpoint: URL
    token_endpoint: URL
    jwks_uri: URL
    userinfo_endpoint: URL | None = None
    end_session_endpoint: URL | None = None
    revocation_endpoint: URL | None = None
    device_authorization_endpoint: URL | None = None
    id_token_signing_alg_values_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    code_challenge_methods_supported: tuple[str, ...] | None = None
    scopes_supported: tuple[str, ...] | None = None
    grant_types_supported: tuple[str, ...] | None = None
    prompt_values_supported: tuple[str, ...] | None = None
    authorization_response_iss_parameter_supported: Flag = False
    backchannel_logout_supported: Flag = False
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def raw(self) -> Mapping[str, Any]:
        """The document as the provider sent it (set by :meth:`from_dict`)."""
        return self._raw

    @classmethod
    def from_dict(
        cls, document: Mapping[str, Any], *, allow_insecure_http: bool
    ) -> ProviderMetadata:
        """Check a metadata document's fields and types; raise :class:`DiscoveryError`.

        The issuer comparison with the configured issuer is done by :func:`fetch_metadata`.
        """
        try:
            metadata = cls.model_validate(
                document, context={"allow_insecure_http": allow_insecure_http}
            )
        except ValidationError as exc:
            # presence and types first, then URLs (issuer first), as a reader checks a document
            first = min(exc.errors(), key=lambda e: e["type"] in _URL_ERRORS)
            raise cls._problem(first) from None
        metadata._raw = dict(document)
        return metadata

    @classmethod
    def _problem(cls, error: ErrorDetails) -> DiscoveryError:
        if error["type"] in _URL_ERRORS:
            return DiscoveryError(error["type"], error["msg"])
        name = str(error["loc"][0])
        field = cls.model_fields[name]
        if field.is_required():
            return DiscoveryError(
                "missing_metadata_field",
                f"The provider metadata lacks the required field {name!r}.",
            )
        what = "invalid"
        if field.annotation is bool:
            what = "not a bool"
        elif field.annotation == tuple[str, ...] | None:
            what = "not a list of strings"
        return DiscoveryError(
            "invalid_metadata_field", f"The provider metadata field {name!r} is {what}."
        )

    @field_validator(
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "end_session_endpoint",
        "revocation_endpoint",
        "device_authorization_endpoint",
    )
    @classmethod
    def _url(cls, url: str | None, info: ValidationInfo) -> str | None:
        allow = bool((info.context or {}).get("allow_insecure_http", False))
        try:
            if info.field_name == "issuer":
                check_issuer_url(url or "", allow)
            elif url is not None:
                check_endpoint_url(url, allow, what=info.field_name or "endpoint")
        except ConfigurationError as exc:
            raise PydanticCustomError(exc.error, exc.description) from exc
        return url


_URL_ERRORS = ("invalid_url", "insecure_url")


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
