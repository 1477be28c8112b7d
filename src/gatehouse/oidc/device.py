"""OAuth 2.0 Device Authorization Grant (RFC 8628), client side — for the CLI on headless hosts.

::

    device = start_device_authorization(http, metadata, client_id, ["openid", "profile"])
    print(device.verification_uri_complete or device.verification_uri, device.user_code)
    tokens = poll_device_token(http, metadata, client, device)

Polling follows RFC 8628 3.5: wait ``interval`` seconds between requests;
``authorization_pending`` → keep polling; ``slow_down`` → the interval grows by 5 s for good;
``access_denied`` / ``expired_token`` → :class:`DeviceFlowError`; and the client gives up with
``expired_token`` once ``expires_in`` has elapsed. A connection timeout doubles the interval
("SHOULD use exponential backoff").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._http import json_object, oauth_error, send
from .client_auth import ClientCredentials, apply_client_auth
from .discovery import ProviderMetadata
from .errors import ConfigurationError, DeviceFlowError, IdPUnavailableError, TokenEndpointError
from .tokens import TokenResponse, parse_token_response, post_token_request

__all__ = [
    "DEVICE_CODE_GRANT_TYPE",
    "DeviceAuthorization",
    "poll_device_token",
    "start_device_authorization",
]

DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL_SECONDS = 5
SLOW_DOWN_INCREMENT_SECONDS = 5
MAX_INTERVAL_SECONDS = 60


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """The device authorization response (RFC 8628 3.2)."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int = DEFAULT_INTERVAL_SECONDS


def _positive_int(value: object, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number > 0 else None


def start_device_authorization(
    http: httpx.Client,
    metadata: ProviderMetadata,
    client_id: str | ClientCredentials,
    scopes: Sequence[str],
) -> DeviceAuthorization:
    """Request a device and user code (RFC 8628 3.1).

    :param client_id: a public client's id, or the credentials of a confidential client
    """
    endpoint = metadata.device_authorization_endpoint
    if endpoint is None:
        raise ConfigurationError(
            "device_flow_unsupported", "The provider has no device authorization endpoint."
        )
    client = (
        client_id
        if isinstance(client_id, ClientCredentials)
        else ClientCredentials(client_id=client_id, auth_method="none")
    )
    scope_list = list(dict.fromkeys(scopes))
    if "openid" not in scope_list:
        scope_list.insert(0, "openid")
    body, headers = apply_client_auth(client, endpoint, {"scope": " ".join(scope_list)})
    headers["Accept"] = "application/json"
    response = send(
        http, "POST", endpoint, what="device authorization endpoint", data=body, headers=headers
    )
    document = json_object(response)
    if response.status_code != 200 or document is None:
        code = oauth_error(document)
        raise DeviceFlowError(
            "device_authorization_failed",
            f"The device authorization endpoint refused the request "
            f"(HTTP {response.status_code}" + (f", {code}" if code else "") + ").",
        )
    return _device_authorization(document)


def _device_authorization(document: dict[str, Any]) -> DeviceAuthorization:
    """RFC 8628 3.2: the response's fields, every required one present and of its type."""
    device_code = document.get("device_code")
    user_code = document.get("user_code")
    # "verification_url" is the pre-RFC name some providers (Google) still send
    verification_uri = document.get("verification_uri") or document.get("verification_url")
    complete = document.get("verification_uri_complete")
    expires_in = _positive_int(document.get("expires_in"), None)
    interval = _positive_int(document.get("interval"), DEFAULT_INTERVAL_SECONDS)
    if not (
        isinstance(device_code, str)
        and device_code
        and isinstance(user_code, str)
        and user_code
        and isinstance(verification_uri, str)
        and verification_uri
        and (complete is None or isinstance(complete, str))
        and expires_in is not None
        and interval is not None
    ):
        raise DeviceFlowError(
            "invalid_device_authorization", "The device authorization response is incomplete."
        )
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=verification_uri,
        verification_uri_complete=complete or None,
        expires_in=expires_in,
        interval=min(interval, MAX_INTERVAL_SECONDS),
    )


def poll_device_token(
    http: httpx.Client,
    metadata: ProviderMetadata,
    client: ClientCredentials,
    device: DeviceAuthorization,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_tick: Callable[[float], None] | None = None,
) -> TokenResponse:
    """Poll the token endpoint until the user approves, denies, or the code expires.

    :param on_tick: called before each poll with the seconds left until the code expires
    :raises DeviceFlowError: ``access_denied`` or ``expired_token`` (also when the deadline
        passes on our side)
    :raises TokenEndpointError: another OAuth error
    :raises IdPUnavailableError: network error (other than a timeout) or 5xx
    """
    deadline = clock() + device.expires_in
    interval = float(device.interval)
    data = {"grant_type": DEVICE_CODE_GRANT_TYPE, "device_code": device.device_code}
    while True:
        if clock() + interval > deadline:
            raise DeviceFlowError("expired_token", "The device code expired before approval.")
        sleep(interval)
        if on_tick is not None:
            on_tick(max(0.0, deadline - clock()))
        try:
            document = post_token_request(http, metadata, client, data)
        except TokenEndpointError as exc:
            code = exc.oauth_error
            if code == "authorization_pending":
                continue
            if code == "slow_down":
                interval += SLOW_DOWN_INCREMENT_SECONDS
                continue
            if code == "access_denied":
                raise DeviceFlowError("access_denied", "The sign-in request was denied.") from exc
            if code == "expired_token":
                raise DeviceFlowError(
                    "expired_token", "The device code expired before approval."
                ) from exc
            raise
        except IdPUnavailableError as exc:
            if isinstance(exc.__cause__, httpx.TimeoutException):
                interval = min(interval * 2, MAX_INTERVAL_SECONDS)
                continue
            raise
        return parse_token_response(document)
