"""Outbound HTTP helpers shared by the modules of :mod:`gatehouse.oidc` (private).

Every request goes through the caller's ``httpx.Client`` and carries an explicit timeout, so a
hanging IdP never hangs a login. Transport failures, timeouts and 5xx answers become
:class:`IdPUnavailableError`; nothing here ever puts a token or a secret in a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import IdPUnavailableError
from .reachability import cause

#: timeout of every outbound request: 10 s overall, 5 s to connect
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)

#: a JSON document from the IdP larger than this is refused (discovery, JWKS, tokens)
MAX_DOCUMENT_BYTES = 1_000_000


def send(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    what: str,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send one request; translate network failures and 5xx answers to IdPUnavailableError.

    :param what: a name for the endpoint used in error sentences, e.g. ``"token endpoint"``
    """
    try:
        response = http.request(
            method,
            url,
            data=dict(data) if data is not None else None,
            headers=dict(headers) if headers is not None else None,
            timeout=HTTP_TIMEOUT,
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        raise IdPUnavailableError(
            "idp_unavailable", f"The identity provider's {what} did not answer in time."
        ) from exc
    except httpx.HTTPError as exc:
        raise IdPUnavailableError(
            "idp_unavailable",
            f"The identity provider's {what} could not be reached ({cause(exc)}).",
        ) from exc
    if response.status_code >= 500:
        raise IdPUnavailableError(
            "idp_unavailable",
            f"The identity provider's {what} answered HTTP {response.status_code}.",
        )
    return response


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response body as a JSON object, or ``None`` when it is not one."""
    if len(response.content) > MAX_DOCUMENT_BYTES:
        return None
    try:
        value = json.loads(response.content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def media_type(response: httpx.Response) -> str:
    """The media type of the response without parameters, lower-cased."""
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower()


# RFC 6749 5.2: error = 1*( %x20-21 / %x23-5B / %x5D-7E )
_OAUTH_ERROR = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$")


def oauth_error(document: Mapping[str, Any] | None) -> str | None:
    """The ``error`` of an OAuth error body when it is a well-formed code (safe to log)."""
    value = document.get("error") if document else None
    if isinstance(value, str) and _OAUTH_ERROR.fullmatch(value):
        return value
    return None
