"""Access logs without secrets: query values are redacted before uvicorn writes the line.

The IdP's redirect back carries the authorization ``code`` and ``state``; the RP-initiated
logout URL carries ``id_token_hint``; a tool may pass a token in a query string by mistake.
The path stays (it is what an operator needs); every query value becomes ``[redacted]`` except
the few that are harmless and useful to read.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, quote

#: Query parameters whose values are kept in access logs (never secret, useful when reading).
KEEP = frozenset({"return_to", "purpose", "prompt", "page", "per_page", "sort", "status", "all"})


def redact_target(target: str) -> str:
    """``/path?code=abc&return_to=/x`` -> ``/path?code=[redacted]&return_to=/x``."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = [
        f"{quote(k)}={quote(v, safe='/:') if k in KEEP else '[redacted]'}"
        for k, v in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{path}?{'&'.join(parts)}" if parts else path


class RedactQuery(logging.Filter):
    """For ``uvicorn.access``: its args are (client, method, target, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_target(args[2]), *args[3:])
        return True


def install() -> None:
    """Attach the filter once (idempotent: every app factory call may run this)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())
