"""Talking to a Gatehouse server: its URL rules, its IdP metadata, and its token endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from gatehouse.oidc import is_loopback_host

from ._errors import GatehouseClientError, LoginFailed, ServerURLError

USER_AGENT = "gatehouse-client"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def normalise_server_url(raw: str) -> str:
    """``https://host[:port][/path]`` without a trailing slash; http only on loopback.

    Tokens travel to this URL, so plain http is refused except on 127.0.0.1 / localhost.
    """
    value = raw.strip().rstrip("/")
    if "://" not in value:
        value = "https://" + value
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise ServerURLError(f"{raw!r} is not a valid server URL.") from exc
    if not host or parts.query or parts.fragment or parts.username or parts.password:
        raise ServerURLError(f"{raw!r} is not a valid server URL (expected https://host).")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ServerURLError(
            f"{raw!r} uses plain http; tokens must not travel unencrypted. Use https://."
        )
    if parts.scheme not in ("http", "https"):
        raise ServerURLError(f"{raw!r} must be an https:// URL.")
    return value


def allows_insecure_http(server: str) -> bool:
    """Development servers on loopback http may use an IdP on loopback http too."""
    parts = urlsplit(server)
    return parts.scheme == "http" and is_loopback_host(parts.hostname or "")


def new_http() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}, trust_env=False)


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The ``{"error", "detail"}`` of a Gatehouse error answer, tolerant of other bodies."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get("error", "error")), str(body.get("detail", response.reason_phrase))
    return "error", f"HTTP {response.status_code}"


def _get(http: httpx.Client, url: str) -> httpx.Response:
    try:
        return http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise GatehouseClientError(
            f"Could not reach {url}: {type(exc).__name__}.", code="server_unreachable"
        ) from exc


@dataclass(frozen=True)
class IdPConfig:
    """What ``GET /api/v1/auth/idp-config`` tells tools; nothing else needs configuring."""

    enabled: bool
    issuer: str | None
    client_id: str | None
    scopes: tuple[str, ...]
    device_flow: bool
    display_name: str | None = None


def fetch_idp_config(http: httpx.Client, server: str) -> IdPConfig:
    response = _get(http, f"{server}/api/v1/auth/idp-config")
    if response.status_code != 200:
        code, detail = error_of(response)
        raise GatehouseClientError(
            f"{server} did not give its sign-in configuration ({detail}). Is this a Gatehouse "
            "server?",
            code=code,
        )
    try:
        body: dict[str, Any] = response.json()
        return IdPConfig(
            enabled=bool(body["enabled"]),
            issuer=body.get("issuer") or None,
            client_id=body.get("client_id") or None,
            scopes=tuple(str(s) for s in body.get("scopes") or ()),
            device_flow=bool(body.get("device_flow")),
            display_name=body.get("display_name") or None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise GatehouseClientError(
            f"{server} answered with a sign-in configuration this client does not understand.",
            code="bad_idp_config",
        ) from exc


@dataclass(frozen=True)
class GatehouseToken:
    access_token: str
    expires_in: int


def _token_answer(response: httpx.Response, server: str) -> GatehouseToken:
    try:
        body = response.json()
        return GatehouseToken(str(body["access_token"]), int(body["expires_in"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise GatehouseClientError(
            f"{server} answered the token request with something unexpected.",
            code="bad_token_answer",
        ) from exc


def _post(http: httpx.Client, url: str, body: dict[str, str]) -> httpx.Response:
    try:
        return http.post(url, json=body, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise GatehouseClientError(
            f"Could not reach {url}: {type(exc).__name__}.", code="server_unreachable"
        ) from exc


class ExchangeRefused(LoginFailed):
    """The server refused the ID token (unknown or disabled user, stale token...)."""

    def __init__(self, code: str, detail: str, status: int) -> None:
        super().__init__(detail, code=code)
        self.status = status


def exchange_id_token(
    http: httpx.Client, server: str, id_token: str, idp_access_token: str | None = None
) -> GatehouseToken:
    """``POST /api/v1/auth/token``: a fresh IdP ID token → a Gatehouse access token.

    The IdP access token goes along so that the server can ask UserInfo when the ID token
    lacks the claim it matches users by (IdPs that keep profile claims out of ID tokens).
    """
    body = {"id_token": id_token}
    if idp_access_token:
        body["idp_access_token"] = idp_access_token
    response = _post(http, f"{server}/api/v1/auth/token", body)
    if response.status_code != 200:
        code, detail = error_of(response)
        raise ExchangeRefused(code, detail, response.status_code)
    return _token_answer(response, server)


def renew_token(
    http: httpx.Client, server: str, previous_token: str, idp_access_token: str
) -> GatehouseToken:
    """``POST /api/v1/auth/token/renew``: after an IdP refresh that brought no new ID token."""
    response = _post(
        http,
        f"{server}/api/v1/auth/token/renew",
        {"previous_token": previous_token, "idp_access_token": idp_access_token},
    )
    if response.status_code != 200:
        code, detail = error_of(response)
        raise ExchangeRefused(code, detail, response.status_code)
    return _token_answer(response, server)


def local_login(http: httpx.Client, server: str, username: str, password: str) -> GatehouseToken:
    """``POST /api/v1/auth/local``: break-glass password sign-in of a local admin."""
    response = _post(
        http, f"{server}/api/v1/auth/local", {"username": username, "password": password}
    )
    if response.status_code != 200:
        _, detail = error_of(response)
        raise LoginFailed(detail, code="local_login_refused")
    return _token_answer(response, server)


def whoami(http: httpx.Client, server: str, access_token: str) -> dict[str, Any]:
    try:
        response = http.get(
            f"{server}/api/v1/me",
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise GatehouseClientError(
            f"Could not reach {server}: {type(exc).__name__}.", code="server_unreachable"
        ) from exc
    if response.status_code != 200:
        code, detail = error_of(response)
        raise GatehouseClientError(detail, code=code)
    body: dict[str, Any] = response.json()
    return body
