"""Pure-ASGI middleware: body size limit and security headers on every response.

Pure ASGI (not BaseHTTPMiddleware) because it sits on the hot path of every request.

HTML pages get a CSP without ``unsafe-inline`` that also pins where forms may go
(``form-action``). Browsers apply ``form-action`` to the redirects that follow a form post too,
and the sign-out form of an OIDC session ends with a 303 to the IdP's ``end_session_endpoint``:
the route that knows the session sets ``request.state.form_action_origin`` (the IdP's origin)
and this middleware adds it to that page's policy. Nothing else ever widens the policy.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatehouse.metrics import REQUEST_SECONDS
from gatehouse.settings import Settings

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: An origin that may be added to ``form-action``: scheme://host[:port], nothing else.
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def content_security_policy(form_action_origin: str | None = None) -> str:
    """The HTML policy; ``form_action_origin`` (validated) may receive this page's forms."""
    if form_action_origin and _ORIGIN.fullmatch(form_action_origin):
        return f"{_CSP} {form_action_origin}"
    return _CSP


class BodyTooLarge(HTTPException):
    """Raised while streaming a body without Content-Length past the limit."""

    def __init__(self) -> None:
        super().__init__(413, "The request body is too large.")


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.hsts = settings.https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = True
                if too_big:
                    await _reject_large(send, self.max_body)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self._security_headers(MutableHeaders(scope=message), scope, path)
            await send(message)

        timer = _timer_for(path)
        began = time.perf_counter()
        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            if not started:
                await _reject_large(send, self.max_body)
        finally:
            if timer is not None:
                timer.observe(time.perf_counter() - began)

    def _security_headers(self, headers: MutableHeaders, scope: Scope, path: str) -> None:
        """What every response carries unless the route set it (HTML: CSP and COOP too)."""
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null"
        # on the console's own form posts, which the CSRF origin check must refuse.
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if self.hsts:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        content_type = headers.get("content-type", "")
        if content_type.startswith("text/html"):
            state = scope.get("state") or {}
            headers.setdefault(
                "Content-Security-Policy",
                content_security_policy(state.get("form_action_origin")),
            )
            headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if not path.startswith("/static/") and path not in ("/healthz", "/metrics"):
            headers.setdefault("Cache-Control", "no-store")


#: ``gatehouse_request_seconds{kind}`` children bound once (the hot path only observes)
_TIMERS = {kind: REQUEST_SECONDS.labels(kind=kind) for kind in ("api", "auth", "console")}
_UNTIMED = ("/healthz", "/readyz", "/metrics")


def _timer_for(path: str) -> Any:
    """The latency histogram of a request: API, sign-in/forward-auth, or console; probes and
    static files are not timed."""
    if path.startswith("/api/"):
        return _TIMERS["api"]
    if path.startswith("/auth/"):
        return _TIMERS["auth"]
    if path.startswith("/static/") or path in _UNTIMED:
        return None
    return _TIMERS["console"]


async def _reject_large(send: Send, limit: int) -> None:
    body: dict[str, Any] = {
        "error": "payload_too_large",
        "detail": f"The request body is larger than the {limit} bytes allowed.",
    }
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
