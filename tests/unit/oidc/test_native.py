"""RFC 8252 loopback redirect server (real loopback sockets)."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from gatehouse.oidc import (
    AuthorizationResponseError,
    LoopbackRedirectServer,
    LoopbackTimeoutError,
)


def test_loopback_server_binds_only_127_0_0_1_on_ephemeral_port() -> None:
    with LoopbackRedirectServer() as server, LoopbackRedirectServer() as other:
        assert server.host == "127.0.0.1"
        assert server.port != 0 and server.port != other.port
        assert server.redirect_uri == f"http://127.0.0.1:{server.port}/callback"
        assert server._server is not None
        assert server._server.socket.getsockname() == ("127.0.0.1", server.port)


def test_loopback_server_ignores_favicon_and_returns_params() -> None:
    with LoopbackRedirectServer(success_page="<p>Signed in</p>") as server:
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client() as http:
            assert http.get(f"{base}/favicon.ico").status_code == 404
            assert not server.done
            reply = http.get(f"{base}/callback", params={"code": "c1", "state": "s1"})
            assert reply.status_code == 200 and reply.text == "<p>Signed in</p>"
            assert reply.headers["cache-control"] == "no-store"
            params = server.wait(timeout=5)
    assert params == {"code": "c1", "state": "s1"}


def test_loopback_server_serves_error_page_and_still_returns_params() -> None:
    with LoopbackRedirectServer(error_page="<p>Failed</p>") as server:
        reply = httpx.get(f"{server.redirect_uri}?error=access_denied&state=s1")
        assert reply.text == "<p>Failed</p>"
        assert server.wait(timeout=5) == {"error": "access_denied", "state": "s1"}


def test_loopback_server_serves_exactly_one_callback() -> None:
    server = LoopbackRedirectServer().start()
    try:
        httpx.get(f"{server.redirect_uri}?code=first&state=s")
        assert httpx.get(f"{server.redirect_uri}?code=second&state=s").status_code == 404
        assert server.wait(timeout=5)["code"] == "first"
    finally:
        server.close()


def test_loopback_server_refuses_duplicated_parameters() -> None:
    with LoopbackRedirectServer() as server:
        httpx.get(f"{server.redirect_uri}?code=a&code=b&state=s")
        with pytest.raises(AuthorizationResponseError, match="duplicate_parameter"):
            server.wait(timeout=5)


def test_loopback_server_wait_times_out_and_closes_socket() -> None:
    server = LoopbackRedirectServer()
    port = server.port
    with pytest.raises(LoopbackTimeoutError):
        server.wait(timeout=0.1)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    server.close()  # idempotent


def test_loopback_server_wait_from_another_thread() -> None:
    with LoopbackRedirectServer() as server:
        timer = threading.Timer(0.1, lambda: httpx.get(f"{server.redirect_uri}?code=x&state=y"))
        timer.start()
        assert server.wait(timeout=5)["code"] == "x"
        timer.join()
