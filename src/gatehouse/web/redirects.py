"""Where Gatehouse may send a browser after sign-in or logout.

``safe_local_path`` accepts only a plain path on Gatehouse itself. Anything that a browser could
read as another host (``//host``, ``/\\host``, a scheme, control characters, encoded variants of
those) is refused.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def safe_local_path(value: str | None, default: str = "/") -> str:
    if not value or len(value) > 2048:
        return default
    candidate = value
    # Decode repeatedly so that %2F%2Fevil and %252F%252Fevil are judged like //evil.
    for _ in range(3):
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in candidate):
            return default
        if not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
            return default
        if "\\" in candidate:
            return default
        decoded = unquote(candidate)
        if decoded == candidate:
            break
        candidate = decoded
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def resolve_return_to(request: object, value: str | None, default: str = "/") -> str:
    """Where to send the browser after sign-in or logout: every such redirect goes through here.

    Today only local paths are allowed; registered apps extend this (issue 6).
    """
    del request
    return safe_local_path(value, default)
