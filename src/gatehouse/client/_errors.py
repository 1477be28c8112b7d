"""Errors of the Gatehouse client SDK — one root, each with a code and a sentence to show.

    GatehouseClientError            1  anything else (network, bad answer)
    ├── ServerURLError              2  the server URL is unusable (not https, malformed)
    ├── LoginFailed                 1  sign-in did not complete (IdP error, timeout, refusal)
    ├── NotSignedIn                 4  no session is stored for the server
    │   └── SessionEnded            4  the session is over (refresh refused, account disabled)
    └── CacheLocked                 1  another command held the token cache for too long

``exit_code`` is what ``gatehouse`` exits with; scripts may rely on 4 meaning "sign in again".
"""

from __future__ import annotations


class GatehouseClientError(Exception):
    """Root of the SDK's errors. ``str(exc)`` is a sentence fit for the user."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ServerURLError(GatehouseClientError):
    code = "invalid_server_url"
    exit_code = 2


class LoginFailed(GatehouseClientError):
    code = "login_failed"


class CacheLocked(GatehouseClientError):
    code = "cache_locked"


class NotSignedIn(GatehouseClientError):
    code = "not_signed_in"
    exit_code = 4

    def __init__(self, server: str, message: str | None = None) -> None:
        super().__init__(
            message or f"You are not signed in to {server}; run `gatehouse login {server}`."
        )
        self.server = server


class SessionEnded(NotSignedIn):
    """The stored session can no longer be renewed; the user must sign in again."""

    code = "session_ended"

    def __init__(self, server: str, reason: str | None = None, *, local: bool = False) -> None:
        command = f"gatehouse login {server}" + (" --local" if local else "")
        super().__init__(server, f"Your session for {server} has ended; run `{command}`.")
        self.reason = reason
