"""The Gatehouse client SDK: sign tools in through the IdP and keep their tokens fresh.

::

    import httpx
    from gatehouse.client import GatehouseAuth

    with httpx.Client(base_url=URL, auth=GatehouseAuth(URL)) as api:
        print(api.get("/api/v1/me").json())

The session is shared with the ``gatehouse`` command (``gatehouse login URL`` signs in once).
"""

from ._auth import GatehouseAuth
from ._cache import StoredSession, TokenCache
from ._errors import (
    CacheLocked,
    GatehouseClientError,
    LoginFailed,
    NotSignedIn,
    ServerURLError,
    SessionEnded,
)
from ._login import login_browser, login_device, login_password, logout
from ._server import IdPConfig, fetch_idp_config, normalise_server_url
from ._session import TokenSource
from .browser import browser_available

__all__ = [
    "CacheLocked",
    "GatehouseAuth",
    "GatehouseClientError",
    "IdPConfig",
    "LoginFailed",
    "NotSignedIn",
    "ServerURLError",
    "SessionEnded",
    "StoredSession",
    "TokenCache",
    "TokenSource",
    "browser_available",
    "fetch_idp_config",
    "login_browser",
    "login_device",
    "login_password",
    "logout",
    "normalise_server_url",
]
