"""Errors of the OpenID Connect relying-party core.

Every error carries a machine code (``error``) and a human sentence (``description``).
Neither ever contains a token, a code, a secret or a key: only names of claims, parameters
and endpoints, so both can go to logs, metrics labels and error pages as they are.

Hierarchy::

    OIDCError
    ├── ConfigurationError          our configuration is unusable (http issuer, auth method)
    ├── DiscoveryError              the provider metadata document is unacceptable
    ├── IdPUnavailableError         network error, timeout, 5xx: "identity provider unavailable"
    ├── TokenValidationError        an ID token, logout token or signed UserInfo failed a check
    ├── AuthorizationResponseError  the redirect back is unacceptable (state, iss, code)
    │   └── IdPErrorResponse        the IdP answered with ``error=`` (e.g. access_denied)
    ├── TokenEndpointError          token / revocation endpoint refused (``oauth_error``)
    │   └── RefreshRefusedError     refresh answered ``invalid_grant``: the session is over
    ├── DeviceFlowError             RFC 8628 polling ended (access_denied, expired_token)
    ├── UserInfoError               the UserInfo response is unacceptable (e.g. another ``sub``)
    └── LoopbackTimeoutError        the native-app loopback redirect never arrived

Library errors (httpx, joserfc) are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "AuthorizationResponseError",
    "ConfigurationError",
    "DeviceFlowError",
    "DiscoveryError",
    "IdPErrorResponse",
    "IdPUnavailableError",
    "LoopbackTimeoutError",
    "OIDCError",
    "RefreshRefusedError",
    "TokenEndpointError",
    "TokenValidationError",
    "UserInfoError",
]


class OIDCError(Exception):
    """Root of every error raised by :mod:`gatehouse.oidc`.

    :param error: machine code, e.g. ``"bad_nonce"``; stable, usable as a metrics label
    :param description: a human sentence, free of tokens and secrets
    """

    #: default machine code of the class
    default_error: str = "oidc_error"

    def __init__(self, error: str | None = None, description: str = "") -> None:
        self.error: str = error or self.default_error
        self.description: str = description or self.error.replace("_", " ")
        super().__init__(f"{self.error}: {self.description}")


class ConfigurationError(OIDCError):
    """Our configuration cannot work (e.g. an http issuer outside loopback)."""

    default_error = "invalid_configuration"


class DiscoveryError(OIDCError):
    """The OpenID Provider metadata could not be used (wrong issuer, missing field, http URL)."""

    default_error = "discovery_failed"


class IdPUnavailableError(OIDCError):
    """The identity provider could not be reached: network error, timeout or a 5xx answer.

    Callers show an "identity provider unavailable" page; retrying later may work.
    """

    default_error = "idp_unavailable"


class TokenValidationError(OIDCError):
    """A JWT from the IdP (ID token, logout token, signed UserInfo) failed validation."""

    default_error = "invalid_token"


class AuthorizationResponseError(OIDCError):
    """The authorization response (the redirect back to us) is unacceptable."""

    default_error = "invalid_authorization_response"


class IdPErrorResponse(AuthorizationResponseError):
    """The IdP returned an error in the authorization response (RFC 6749 4.1.2.1).

    :param idp_error: the IdP's ``error`` value, e.g. ``access_denied``
    :param idp_error_description: the IdP's ``error_description``, if any (IdP-controlled text)
    :param issuer_verified: ``False`` when the response lacked the ``iss`` the IdP advertises
        (RFC 9207): it is still refused, but nothing proves the IdP sent it
    """

    default_error = "idp_error"

    def __init__(
        self,
        idp_error: str,
        idp_error_description: str | None = None,
        *,
        issuer_verified: bool = True,
    ) -> None:
        self.idp_error = idp_error
        self.idp_error_description = idp_error_description
        self.issuer_verified = issuer_verified
        super().__init__(
            "idp_error", f"The identity provider answered with the error {idp_error!r}."
        )


class TokenEndpointError(OIDCError):
    """The token (or revocation) endpoint refused the request.

    :param oauth_error: the OAuth ``error`` value from the response (e.g. ``invalid_grant``)
        or ``None`` when the answer had none
    """

    default_error = "token_endpoint_error"

    def __init__(
        self,
        error: str | None = None,
        description: str = "",
        *,
        oauth_error: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.oauth_error = oauth_error
        self.status_code = status_code
        super().__init__(error, description)


class RefreshRefusedError(TokenEndpointError):
    """The IdP refused the refresh token (``invalid_grant``): sign the user in again."""

    default_error = "refresh_refused"


class DeviceFlowError(OIDCError):
    """The device grant ended without tokens (``access_denied``, ``expired_token``)."""

    default_error = "device_flow_failed"


class UserInfoError(OIDCError):
    """The UserInfo response is unacceptable."""

    default_error = "userinfo_failed"


class LoopbackTimeoutError(OIDCError):
    """No redirect reached the loopback server in time."""

    default_error = "login_timeout"
