"""The authorization request and response of the code flow (OIDC Core 3.1.2, RFC 6749 4.1).

Start::

    url, flow = build_authorization_request(metadata, client_id, redirect_uri, ["openid", ...])
    # persist flow.as_dict() server-side (bound to the browser session), redirect to url

Callback::

    flow = FlowSecrets.from_dict(stored)            # then delete it: one use only
    code = parse_authorization_response(request_params, expected_state=flow.state,
                                        metadata=metadata)
    tokens = exchange_code(http, metadata, client, code, flow.redirect_uri, flow.code_verifier)
    claims = validate_id_token(tokens.id_token, ..., nonce=flow.nonce,
                               max_age_seconds=flow.max_age)

The response checks run in this order, and no code is returned before all pass:
``state`` (constant-time), ``iss`` (RFC 9207), ``error``, ``code``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .discovery import ProviderMetadata
from .errors import AuthorizationResponseError, ConfigurationError, IdPErrorResponse
from .pkce import CODE_CHALLENGE_METHOD, challenge_s256, generate_verifier

__all__ = [
    "AuthorizationRequest",
    "FlowSecrets",
    "build_authorization_request",
    "parse_authorization_response",
]

#: parameters that ``extra_params`` may not set: they carry the flow's security
_RESERVED_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "prompt",
        "max_age",
        "response_mode",
        "request",
        "request_uri",
    }
)


def _random_token() -> str:
    """256 random bits, base64url (43 characters)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class FlowSecrets:
    """What the relying party keeps between the start of a login and its callback.

    Store it server-side (or encrypted), bound to the browser, for one use only.
    ``state``, ``nonce`` and ``code_verifier`` each hold 256 random bits.
    """

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    issuer: str
    max_age: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, for a session store."""
        return {
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
            "issuer": self.issuer,
            "max_age": self.max_age,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowSecrets:
        """The inverse of :meth:`as_dict`."""
        max_age = data.get("max_age")
        return cls(
            state=str(data["state"]),
            nonce=str(data["nonce"]),
            code_verifier=str(data["code_verifier"]),
            redirect_uri=str(data["redirect_uri"]),
            issuer=str(data["issuer"]),
            max_age=int(max_age) if max_age is not None else None,
        )


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """The parameters of an authorization request (OIDC Core 3.1.2.1)."""

    authorization_endpoint: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_challenge: str
    code_challenge_method: str = CODE_CHALLENGE_METHOD
    response_type: str = "code"
    prompt: str | None = None
    max_age: int | None = None
    extra_params: Mapping[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """The query parameters, in a stable order."""
        params = {
            "response_type": self.response_type,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
        }
        if self.prompt is not None:
            params["prompt"] = self.prompt
        if self.max_age is not None:
            params["max_age"] = str(self.max_age)
        params.update(self.extra_params)
        return params

    def to_url(self) -> str:
        """The authorization endpoint with the parameters appended to any query it has."""
        parts = urlsplit(self.authorization_endpoint)
        query = urlencode(self.params())
        if parts.query:
            query = parts.query + "&" + query
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def build_authorization_request(
    metadata: ProviderMetadata,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    *,
    extra_params: Mapping[str, str] | None = None,
    prompt: str | None = None,
    max_age: int | None = None,
) -> tuple[str, FlowSecrets]:
    """Build the URL to send the browser to, and the secrets to keep until the callback.

    ``openid`` is added to the scopes when missing. PKCE uses S256 always.

    :raises ConfigurationError: ``extra_params`` tries to set a reserved parameter
    """
    extra = dict(extra_params or {})
    reserved = _RESERVED_PARAMS.intersection(extra)
    if reserved:
        raise ConfigurationError(
            "reserved_parameter",
            f"Extra authorization parameters may not set {sorted(reserved)}.",
        )
    if max_age is not None and max_age < 0:
        raise ConfigurationError("invalid_max_age", "max_age must not be negative.")
    scope_list = list(dict.fromkeys(scopes))
    if "openid" not in scope_list:
        scope_list.insert(0, "openid")

    verifier = generate_verifier()
    secrets_ = FlowSecrets(
        state=_random_token(),
        nonce=_random_token(),
        code_verifier=verifier,
        redirect_uri=redirect_uri,
        issuer=metadata.issuer,
        max_age=max_age,
    )
    request = AuthorizationRequest(
        authorization_endpoint=metadata.authorization_endpoint,
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(scope_list),
        state=secrets_.state,
        nonce=secrets_.nonce,
        code_challenge=challenge_s256(verifier),
        prompt=prompt,
        max_age=max_age,
        extra_params=extra,
    )
    return request.to_url(), secrets_


def _check_state(params: Mapping[str, str], expected_state: str) -> None:
    """RFC 6749 10.12: the ``state`` must be the one bound to this browser (CSRF)."""
    received = params.get("state")
    if (
        not isinstance(received, str)
        or not expected_state
        or not hmac.compare_digest(received.encode(), expected_state.encode())
    ):
        raise AuthorizationResponseError(
            "state_mismatch", "The state parameter does not match this sign-in attempt."
        )


def _check_iss(params: Mapping[str, str], metadata: ProviderMetadata) -> None:
    """RFC 9207 2.4: "Clients that support this specification MUST extract the value of the
    iss parameter from authorization responses they receive if the parameter is present.
    Clients MUST then decode the value from its application/x-www-form-urlencoded form ...
    and compare the result to the issuer identifier of the authorization server where the
    authorization request was sent to. This comparison MUST use simple string comparison".
    And: "authorization servers that advertise authorization_response_iss_parameter_supported
    ... clients MUST reject authorization responses without the iss parameter".
    """
    iss = params.get("iss")
    if iss is None:
        if metadata.authorization_response_iss_parameter_supported:
            raise AuthorizationResponseError(
                "iss_missing",
                "The identity provider advertises the iss parameter but the response lacks it.",
            )
        return
    if iss != metadata.issuer:
        raise AuthorizationResponseError(
            "iss_mismatch", "The iss parameter names another identity provider."
        )


def _unverifiable_error(params: Mapping[str, str], metadata: ProviderMetadata) -> bool:
    """An error response (``error``, no ``code``) lacking the ``iss`` its IdP advertises."""
    return (
        metadata.authorization_response_iss_parameter_supported
        and params.get("iss") is None
        and isinstance(params.get("error"), str)
        and params.get("code") is None
    )


def parse_authorization_response(
    params: Mapping[str, str],
    *,
    expected_state: str,
    metadata: ProviderMetadata,
) -> str:
    """Check the redirect's query parameters and return the authorization code.

    :raises AuthorizationResponseError: ``state_mismatch``, ``iss_mismatch``, ``iss_missing``,
        ``missing_code``
    :raises IdPErrorResponse: the IdP answered with ``error`` (after state and iss passed; or
        with ``issuer_verified=False``, see below)
    """
    _check_state(params, expected_state)
    if _unverifiable_error(params, metadata):
        # RFC 9207 2.4: a response without the advertised iss MUST be rejected -- and it is:
        # it carries no code, so nothing in it can sign anyone in. Some IdPs leave iss out of
        # error redirects (the user pressed Cancel); saying "the sign-in was cancelled or
        # denied" is then safe, as long as the caller never treats it as the IdP's verdict.
        raise IdPErrorResponse(
            str(params["error"]), params.get("error_description"), issuer_verified=False
        )
    _check_iss(params, metadata)
    error = params.get("error")
    if error is not None:
        raise IdPErrorResponse(error, params.get("error_description"))
    code = params.get("code")
    if not code:
        raise AuthorizationResponseError(
            "missing_code", "The authorization response contains no code."
        )
    return code
