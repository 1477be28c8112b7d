"""``GatehouseAuth``: an ``httpx.Auth`` that signs requests to one Gatehouse server.

It takes the token from the shared cache (the one `gatehouse login` fills), renews it silently
when it is about to expire, and when the server still answers 401 renews once and retries.
With ``interactive=True`` (the default) a user who is not signed in is sent through the browser
(or the device flow where no browser can open) on the first request.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from urllib.parse import urlsplit

import anyio.to_thread
import httpx

from gatehouse.oidc import DeviceAuthorization

from ._cache import TokenCache
from ._errors import NotSignedIn
from ._login import DEFAULT_TIMEOUT_SECONDS, login_browser, login_device
from ._server import normalise_server_url
from ._session import TokenSource
from .browser import browser_available


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _show_device_code(device: DeviceAuthorization) -> None:
    import sys

    target = device.verification_uri_complete or device.verification_uri
    sys.stderr.write(f"To sign in, open {target} and confirm the code {device.user_code}.\n")


class GatehouseAuth(httpx.Auth):
    """Authenticate httpx requests to ``server_url`` as the signed-in user::

        with httpx.Client(base_url=URL, auth=GatehouseAuth(URL)) as api:
            print(api.get("/api/v1/me").json())

    :param interactive: sign the user in (browser, or device flow) when no session exists;
        ``False`` raises :class:`NotSignedIn` instead (scripts, CI)
    :param cache: the token cache (default: the user's, shared with the ``gatehouse`` CLI)
    """

    requires_request_body = True  # a retried request must be able to send its body again

    def __init__(
        self,
        server_url: str,
        *,
        interactive: bool = True,
        cache: TokenCache | None = None,
        open_browser: Callable[[str], bool] | None = None,
        on_device_code: Callable[[DeviceAuthorization], None] = _show_device_code,
        login_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        source: TokenSource | None = None,
    ) -> None:
        self.server = normalise_server_url(server_url)
        self.cache = cache or TokenCache()
        self.interactive = interactive
        self._open_browser = open_browser
        self._on_device_code = on_device_code
        self._login_timeout = login_timeout
        self.source = source or TokenSource(self.server, cache=self.cache)

    # -- tokens -------------------------------------------------------------------------------
    def token(self, rejected: str | None = None) -> str:
        """A fresh access token (signing in first when allowed and needed)."""
        try:
            return self.source.access_token(rejected=rejected)
        except NotSignedIn:
            if not self.interactive:
                raise
        if self._open_browser is not None or browser_available():
            login_browser(
                self.server,
                cache=self.cache,
                open_browser=self._open_browser,
                timeout=self._login_timeout,
            )
        else:
            login_device(self.server, cache=self.cache, on_code=self._on_device_code)
        return self.source.access_token()

    def _ours(self, request: httpx.Request) -> bool:
        """Only our server ever sees the token, whatever URL the caller sends."""
        return _origin(str(request.url)) == _origin(self.server)

    # -- httpx hooks --------------------------------------------------------------------------
    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._ours(request):
            yield request
            return
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            response.read()
            request.headers["Authorization"] = f"Bearer {self.token(rejected=token)}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._ours(request):
            yield request
            return
        # Renewing does blocking I/O and may wait on the cache lock: keep the loop free.
        token = await anyio.to_thread.run_sync(self.token)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            await response.aread()
            fresh = await anyio.to_thread.run_sync(lambda: self.token(rejected=token))
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request
