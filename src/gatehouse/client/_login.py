"""Signing a user in from a tool: browser + loopback (RFC 8252), device flow (RFC 8628), or a
local admin's password. Each ends with a Gatehouse token stored in the :class:`TokenCache`.

The browser flow: listen on 127.0.0.1 on an ephemeral port, send the browser to the IdP with
PKCE S256, ``state`` and ``nonce``, receive the code on ``/callback``, redeem it at the IdP,
validate the ID token (signature, issuer, audience, nonce, ``iss`` in the redirect per RFC 9207),
then exchange the ID token for a Gatehouse token at the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from gatehouse import oidc
from gatehouse.oidc import (
    AuthorizationResponseError,
    ClientCredentials,
    DeviceAuthorization,
    DeviceFlowError,
    IdPErrorResponse,
    JWKSCache,
    LoopbackRedirectServer,
    LoopbackTimeoutError,
    OIDCError,
    ProviderMetadata,
    TokenResponse,
)

from ._cache import StoredSession, TokenCache, updated
from ._errors import GatehouseClientError, LoginFailed
from ._server import (
    IdPConfig,
    allows_insecure_http,
    exchange_id_token,
    fetch_idp_config,
    local_login,
    new_http,
    normalise_server_url,
    whoami,
)
from ._session import CLIENT_LEEWAY_SECONDS, kept_claims

DEFAULT_TIMEOUT_SECONDS = 300.0

SUCCESS_PAGE = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Signed in</title>"
    "<style>body{font:16px system-ui,sans-serif;display:grid;place-items:center;height:90vh;"
    "margin:0;color:#1b1f24}main{text-align:center}h1{font-size:1.4rem}</style></head>"
    "<body><main><h1>Signed in — you can close this tab.</h1>"
    "<p>Return to your terminal.</p></main></body></html>"
)
ERROR_PAGE = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sign-in failed</title>"
    "<style>body{font:16px system-ui,sans-serif;display:grid;place-items:center;height:90vh;"
    "margin:0;color:#1b1f24}main{text-align:center}h1{font-size:1.4rem}</style></head>"
    "<body><main><h1>Sign-in did not complete.</h1>"
    "<p>Return to your terminal for the reason.</p></main></body></html>"
)


def _printable(text: str, limit: int = 200) -> str:
    """IdP-controlled text, safe for a terminal: no control characters, bounded length."""
    return "".join(c for c in text if c.isprintable())[:limit]


@dataclass(frozen=True)
class _Provider:
    server: str
    idp: IdPConfig
    issuer: str
    client_id: str
    metadata: ProviderMetadata
    jwks: JWKSCache


def _provider(http: httpx.Client, server: str) -> _Provider:
    idp = fetch_idp_config(http, server)
    if not idp.enabled or not idp.issuer or not idp.client_id:
        raise LoginFailed(
            f"Single sign-on is not active on {server}. Local admins can sign in with "
            f"`gatehouse login {server} --local`.",
            code="oidc_inactive",
        )
    try:
        metadata = oidc.fetch_metadata(
            http, idp.issuer, allow_insecure_http=allows_insecure_http(server)
        )
    except OIDCError as exc:
        raise LoginFailed(
            f"Could not read the identity provider's configuration: {exc.description}",
            code=exc.error,
        ) from exc
    return _Provider(
        server, idp, idp.issuer, idp.client_id, metadata, JWKSCache(http, metadata.jwks_uri)
    )


def _finish(
    http: httpx.Client,
    cache: TokenCache,
    provider: _Provider,
    tokens: TokenResponse,
    nonce: str | None,
) -> StoredSession:
    """Validate the ID token, exchange it at the server, and store the session."""
    assert tokens.id_token is not None
    try:
        claims = oidc.validate_id_token(
            tokens.id_token,
            metadata=provider.metadata,
            jwks=provider.jwks,
            client_id=provider.client_id,
            nonce=nonce,
            leeway_seconds=CLIENT_LEEWAY_SECONDS,
        )
    except OIDCError as exc:
        raise LoginFailed(
            f"The identity provider's ID token was not acceptable: {exc.description}",
            code=exc.error,
        ) from exc
    token = exchange_id_token(http, provider.server, tokens.id_token, tokens.access_token)
    session = StoredSession(
        server=provider.server,
        method="oidc",
        access_token=token.access_token,
        access_expires_at=time.time() + token.expires_in,
        issuer=provider.issuer,
        client_id=provider.client_id,
        scopes=provider.idp.scopes,
        refresh_token=tokens.refresh_token,
        id_claims=kept_claims(dict(claims)),
    )
    return _store_with_identity(http, cache, session)


def _store_with_identity(
    http: httpx.Client, cache: TokenCache, session: StoredSession
) -> StoredSession:
    me = whoami(http, session.server, session.access_token)
    session = updated(
        session,
        username=str(me.get("username")),
        user_id=int(me["id"]) if "id" in me else None,
    )
    with cache.lock(session.server):
        cache.save(session)
    return session


def _authorization_code(
    params: Mapping[str, str], flow: oidc.FlowSecrets, provider: _Provider
) -> str:
    """The code the browser brought back, after ``state`` and ``iss``; LoginFailed otherwise."""
    try:
        return oidc.parse_authorization_response(
            params, expected_state=flow.state, metadata=provider.metadata
        )
    except IdPErrorResponse as exc:
        said = _printable(exc.idp_error_description or "")
        raise LoginFailed(
            f"The identity provider refused the sign-in ({_printable(exc.idp_error)}"
            + (f": {said}" if said else "")
            + ").",
            code=_printable(exc.idp_error) or exc.error,
        ) from exc
    except AuthorizationResponseError as exc:
        raise LoginFailed(
            f"The browser came back with an unusable answer: {exc.description}",
            code=exc.error,
        ) from exc


def login_browser(
    server: str,
    *,
    cache: TokenCache | None = None,
    open_browser: Callable[[str], bool] | None = None,
    on_url: Callable[[str, bool], None] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    http: httpx.Client | None = None,
) -> StoredSession:
    """Sign in through the system browser; returns the stored session.

    :param open_browser: opens a URL, returns whether it could (default ``webbrowser.open``,
        which honours ``$BROWSER``); pass ``lambda url: False`` to only print the URL
    :param on_url: told the URL and whether the browser was opened (show it to the user)
    """
    import webbrowser

    server = normalise_server_url(server)
    cache = cache or TokenCache()
    opener = open_browser or webbrowser.open
    with http or new_http() as client:
        provider = _provider(client, server)
        with LoopbackRedirectServer(success_page=SUCCESS_PAGE, error_page=ERROR_PAGE) as loop:
            url, flow = oidc.build_authorization_request(
                provider.metadata, provider.client_id, loop.redirect_uri, provider.idp.scopes
            )
            opened = bool(opener(url))
            if on_url is not None:
                on_url(url, opened)
            try:
                params = loop.wait(timeout)
            except LoopbackTimeoutError as exc:
                minutes = f"{timeout / 60:g} minute" + ("" if timeout == 60 else "s")
                raise LoginFailed(
                    f"No sign-in arrived from the browser within {minutes}; run "
                    f"`gatehouse login {server}` to try again.",
                    code="login_timeout",
                ) from exc
        code = _authorization_code(params, flow, provider)
        pkce_client = ClientCredentials(client_id=provider.client_id, auth_method="none")
        try:
            tokens = oidc.exchange_code(
                client, provider.metadata, pkce_client, code, flow.redirect_uri, flow.code_verifier
            )
        except OIDCError as exc:
            raise LoginFailed(
                f"The identity provider did not accept the sign-in: {exc.description}",
                code=exc.error,
            ) from exc
        return _finish(client, cache, provider, tokens, flow.nonce)


def login_device(
    server: str,
    *,
    cache: TokenCache | None = None,
    on_code: Callable[[DeviceAuthorization], None],
    on_tick: Callable[[float], None] | None = None,
    http: httpx.Client | None = None,
) -> StoredSession:
    """Sign in with the device authorization grant (for hosts without a browser).

    :param on_code: shows the verification URI and the user code to the user
    """
    server = normalise_server_url(server)
    cache = cache or TokenCache()
    with http or new_http() as client:
        provider = _provider(client, server)
        if not provider.idp.device_flow or provider.metadata.device_authorization_endpoint is None:
            raise LoginFailed(
                "The identity provider does not offer the device flow; sign in on a machine with "
                f"a browser, or run `gatehouse login {server} --no-browser` and open the link "
                "on this machine.",
                code="device_flow_unsupported",
            )
        pkce_client = ClientCredentials(client_id=provider.client_id, auth_method="none")
        try:
            device = oidc.start_device_authorization(
                client, provider.metadata, provider.client_id, provider.idp.scopes
            )
            on_code(device)
            tokens = oidc.poll_device_token(
                client, provider.metadata, pkce_client, device, on_tick=on_tick
            )
        except DeviceFlowError as exc:
            reasons = {
                "access_denied": "The sign-in was denied at the identity provider.",
                "expired_token": "The code expired before the sign-in was approved; run "
                f"`gatehouse login {server} --device` again.",
            }
            raise LoginFailed(reasons.get(exc.error, exc.description), code=exc.error) from exc
        except OIDCError as exc:
            raise LoginFailed(
                f"The identity provider refused the device sign-in: {exc.description}",
                code=exc.error,
            ) from exc
        if tokens.id_token is None:
            raise LoginFailed("The identity provider sent no ID token.", code="missing_id_token")
        return _finish(client, cache, provider, tokens, None)


def login_password(
    server: str,
    username: str,
    password: str,
    *,
    cache: TokenCache | None = None,
    http: httpx.Client | None = None,
) -> StoredSession:
    """Break-glass: a local admin's password → a Gatehouse token (not renewable)."""
    server = normalise_server_url(server)
    cache = cache or TokenCache()
    with http or new_http() as client:
        token = local_login(client, server, username, password)
        session = StoredSession(
            server=server,
            method="local",
            access_token=token.access_token,
            access_expires_at=time.time() + token.expires_in,
        )
        return _store_with_identity(client, cache, session)


def logout(
    server: str, *, cache: TokenCache | None = None, http: httpx.Client | None = None
) -> tuple[bool, str | None]:
    """Revoke the refresh token at the IdP when it offers revocation, then forget the session.

    Returns (whether a session existed, a warning when the IdP could not be told).
    """
    server = normalise_server_url(server)
    cache = cache or TokenCache()
    warning = None
    with cache.lock(server):
        session = cache.load(server)
        if session is None:
            return False, None
        if session.refresh_token and session.issuer and session.client_id:
            with http or new_http() as client:
                try:
                    metadata = oidc.fetch_metadata(
                        client, session.issuer, allow_insecure_http=allows_insecure_http(server)
                    )
                    oidc.revoke(
                        client,
                        metadata,
                        ClientCredentials(client_id=session.client_id, auth_method="none"),
                        session.refresh_token,
                        "refresh_token",
                    )
                except OIDCError as exc:
                    warning = (
                        "The identity provider could not be told to revoke the sign-in "
                        f"({exc.description}); it was forgotten here anyway."
                    )
        cache.delete(server)
    return True, warning


__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "GatehouseClientError",
    "login_browser",
    "login_device",
    "login_password",
    "logout",
]
