"""Why an IdP cannot be reached, named from real socket failures on this machine."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from gatehouse.oidc import IdPUnavailableError, fetch_metadata, probe
from idp.fixture import free_port


class _Ok(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(400)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def plain_http() -> Iterator[int]:
    """A plain-HTTP server on a free port (answers HEAD with 400)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent() -> Iterator[int]:
    """A socket that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_any_http_answer_is_reachable(plain_http: int) -> None:
    with httpx.Client() as http:
        assert probe(http, f"http://127.0.0.1:{plain_http}/auth?client_id=x").ok


def test_nothing_listening_is_connection_refused() -> None:
    with httpx.Client() as http:
        result = probe(http, f"http://127.0.0.1:{free_port()}/auth")
    assert not result.ok and result.reason == "127.0.0.1: connection refused"


def test_an_unknown_name_is_a_dns_failure() -> None:
    with httpx.Client() as http:
        result = probe(http, "http://gatehouse-idp.invalid/auth")
    assert result.reason == "gatehouse-idp.invalid: DNS: the name does not resolve"


def test_tls_to_a_plain_http_server_is_a_tls_failure(plain_http: int) -> None:
    with httpx.Client() as http:
        result = probe(http, f"https://127.0.0.1:{plain_http}/auth")
    assert not result.ok and result.reason.startswith("127.0.0.1: TLS: the handshake failed")


def test_a_server_that_never_answers_timed_out(silent: int) -> None:
    with httpx.Client() as http:
        result = probe(http, f"http://127.0.0.1:{silent}/auth", timeout=httpx.Timeout(0.3))
    assert result.reason == "127.0.0.1: timed out"


def test_discovery_failures_name_their_cause() -> None:
    """What the admin's Test shows for an IdP it cannot reach."""
    with httpx.Client() as http, pytest.raises(IdPUnavailableError) as info:
        fetch_metadata(http, f"http://127.0.0.1:{free_port()}", allow_insecure_http=True)
    assert info.value.description == (
        "The identity provider's discovery document could not be reached (connection refused)."
    )
    with httpx.Client() as http, pytest.raises(IdPUnavailableError) as dns:
        fetch_metadata(http, "https://gatehouse-idp.invalid", allow_insecure_http=False)
    assert "(DNS: the name does not resolve)" in dns.value.description
