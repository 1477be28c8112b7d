"""Native-app building blocks (RFC 8252), without any UI.

:class:`LoopbackRedirectServer` receives the authorization response of a login in the system
browser (RFC 8252 7.3):

* it binds ``127.0.0.1`` on an ephemeral port — never ``0.0.0.0`` (8.3: "listening on all
  network interfaces ... is NOT RECOMMENDED"), never a fixed port (7.3: "the client ... MUST
  allow any port to be specified");
* it answers exactly one ``GET /callback`` with the caller's HTML page and returns its query
  parameters; any other path (``/favicon.ico``) gets a 404;
* it logs nothing (the request line holds the authorization code) and always closes its socket.

::

    with LoopbackRedirectServer() as server:
        url, flow = build_authorization_request(metadata, client_id, server.redirect_uri, scopes)
        webbrowser.open(url)
        params = server.wait(timeout=300)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import AuthorizationResponseError, LoopbackTimeoutError

__all__ = ["DEFAULT_ERROR_PAGE", "DEFAULT_SUCCESS_PAGE", "LoopbackRedirectServer"]

LOOPBACK_HOST = "127.0.0.1"
CALLBACK_PATH = "/callback"

DEFAULT_SUCCESS_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Signed in</title></head>"
    "<body><p>Signed in — you can close this tab.</p></body></html>"
)
DEFAULT_ERROR_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Sign-in failed</title></head>"
    "<body><p>Sign-in did not complete. Return to the terminal for details.</p></body></html>"
)


class _Server(HTTPServer):
    """An HTTPServer that carries the outcome for its handler."""

    allow_reuse_address = False

    def __init__(self, owner: LoopbackRedirectServer) -> None:
        self.owner = owner
        super().__init__((LOOPBACK_HOST, 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        owner = self.server.owner
        if parts.path != CALLBACK_PATH or owner.done:
            self._answer(404, "<!doctype html><title>Not found</title>")
            return
        raw = parse_qs(parts.query, keep_blank_values=True)
        duplicated = sorted(k for k, v in raw.items() if len(v) > 1)
        params = {k: v[0] for k, v in raw.items()}
        failed = bool(duplicated) or "error" in params or "code" not in params
        self._answer(200, owner.error_page if failed else owner.success_page)
        owner.deliver(params, duplicated)

    def do_POST(self) -> None:
        self._answer(405, "<!doctype html><title>Method not allowed</title>")

    def _answer(self, status: int, html: str) -> None:
        body = html.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: the request line carries the authorization code."""


class LoopbackRedirectServer:
    """A one-shot redirect receiver on ``http://127.0.0.1:{port}/callback``.

    :param success_page: HTML sent when the redirect carries a code
    :param error_page: HTML sent when it carries an error (or no code)
    """

    def __init__(
        self,
        *,
        success_page: str = DEFAULT_SUCCESS_PAGE,
        error_page: str = DEFAULT_ERROR_PAGE,
    ) -> None:
        self.success_page = success_page
        self.error_page = error_page
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._params: dict[str, str] | None = None
        self._duplicated: list[str] = []
        self._server: _Server | None = _Server(self)
        self._thread: threading.Thread | None = None
        self.host, self.port = self._server.server_address[0], self._server.server_address[1]

    @property
    def redirect_uri(self) -> str:
        """``http://127.0.0.1:{port}/callback``."""
        return f"http://{LOOPBACK_HOST}:{self.port}{CALLBACK_PATH}"

    @property
    def done(self) -> bool:
        """Whether the callback has been received."""
        return self._event.is_set()

    def deliver(self, params: Mapping[str, str], duplicated: list[str]) -> None:
        """Record the first callback's parameters (called by the handler thread)."""
        with self._lock:
            if self._event.is_set():
                return
            self._params = dict(params)
            self._duplicated = list(duplicated)
            self._event.set()

    def start(self) -> LoopbackRedirectServer:
        """Serve in a daemon thread (idempotent)."""
        if self._server is None:
            raise RuntimeError("the loopback server is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="gatehouse-loopback-redirect",
                daemon=True,
            )
            self._thread.start()
        return self

    def wait(self, timeout: float) -> dict[str, str]:
        """Block until the redirect arrives; return its query parameters; close the server.

        :raises LoopbackTimeoutError: nothing arrived within ``timeout`` seconds
        :raises AuthorizationResponseError: a parameter was repeated (RFC 6749 3.1)
        """
        self.start()
        try:
            if not self._event.wait(timeout):
                raise LoopbackTimeoutError(
                    "login_timeout", "The browser did not come back in time."
                )
        finally:
            self.close()
        if self._duplicated:
            raise AuthorizationResponseError(
                "duplicate_parameter",
                f"The redirect repeats the parameters {self._duplicated}.",
            )
        assert self._params is not None
        return dict(self._params)

    def close(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=5)
        server.server_close()

    def __enter__(self) -> LoopbackRedirectServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
