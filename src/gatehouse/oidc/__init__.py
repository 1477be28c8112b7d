"""The OpenID Connect relying-party core of Gatehouse.

Framework-free and synchronous: every network call goes through an ``httpx.Client`` passed in by
the caller, with explicit timeouts. One module per concept:

=====================  ===========================================================
``errors``             the exception hierarchy (root :class:`OIDCError`)
``discovery``          provider metadata (OIDC Discovery), issuer URL checks, cache
``jwks``               the provider's signing keys, cached (:class:`JWKSCache`)
``pkce``               RFC 7636 S256
``authorization``      authorization request / response (state, nonce, RFC 9207 iss)
``client_auth``        token endpoint client authentication
``tokens``             code exchange, refresh, revocation
``id_token``           ID token validation (OIDC Core 3.1.3.7, refresh 12.2)
``logout``             back-channel logout token validation (BCL 1.0 2.6)
``userinfo``           the UserInfo endpoint
``device``             RFC 8628 device authorization grant (client side)
``native``             RFC 8252 loopback redirect receiver
``reachability``       why an IdP cannot be reached (DNS, refused, TLS, timeout); a probe
=====================  ===========================================================
"""

from .authorization import (
    AuthorizationRequest,
    FlowSecrets,
    build_authorization_request,
    parse_authorization_response,
)
from .client_auth import AuthMethod, ClientCredentials, apply_client_auth, build_client_assertion
from .device import DeviceAuthorization, poll_device_token, start_device_authorization
from .discovery import (
    MetadataCache,
    ProviderMetadata,
    check_endpoint_url,
    check_issuer_url,
    discovery_url,
    fetch_metadata,
    is_loopback_host,
)
from .errors import (
    AuthorizationResponseError,
    ConfigurationError,
    DeviceFlowError,
    DiscoveryError,
    IdPErrorResponse,
    IdPUnavailableError,
    LoopbackTimeoutError,
    OIDCError,
    RefreshRefusedError,
    TokenEndpointError,
    TokenValidationError,
    UserInfoError,
)
from .id_token import (
    IDTokenValidator,
    VerifiedIDTokenClaims,
    validate_id_token,
    validate_refreshed_id_token,
)
from .jwks import JWKSCache
from .logout import VerifiedLogoutTokenClaims, validate_logout_token
from .native import LoopbackRedirectServer
from .pkce import challenge_s256, generate_verifier
from .reachability import Reachability, probe
from .tokens import TokenResponse, exchange_code, refresh, revoke
from .userinfo import fetch_userinfo

__all__ = [
    "AuthMethod",
    "AuthorizationRequest",
    "AuthorizationResponseError",
    "ClientCredentials",
    "ConfigurationError",
    "DeviceAuthorization",
    "DeviceFlowError",
    "DiscoveryError",
    "FlowSecrets",
    "IDTokenValidator",
    "IdPErrorResponse",
    "IdPUnavailableError",
    "JWKSCache",
    "LoopbackRedirectServer",
    "LoopbackTimeoutError",
    "MetadataCache",
    "OIDCError",
    "ProviderMetadata",
    "Reachability",
    "RefreshRefusedError",
    "TokenEndpointError",
    "TokenResponse",
    "TokenValidationError",
    "UserInfoError",
    "VerifiedIDTokenClaims",
    "VerifiedLogoutTokenClaims",
    "apply_client_auth",
    "build_authorization_request",
    "build_client_assertion",
    "challenge_s256",
    "check_endpoint_url",
    "check_issuer_url",
    "discovery_url",
    "exchange_code",
    "fetch_metadata",
    "fetch_userinfo",
    "generate_verifier",
    "is_loopback_host",
    "parse_authorization_response",
    "poll_device_token",
    "probe",
    "refresh",
    "revoke",
    "start_device_authorization",
    "validate_id_token",
    "validate_logout_token",
    "validate_refreshed_id_token",
]
