"""Self-tests: the test IdP behaves like a real OpenID Provider peer."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import webbrowser
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.fixture import (
    CLI_CLIENT_ID,
    DEVICE_GRANT,
    WEB_CLIENT_ID,
    WEB_CLIENT_SECRET,
    WEB_POST_CLIENT_ID,
    WEB_POST_CLIENT_SECRET,
    IdPLoginError,
    OpenIDProvider,
    pkce_pair,
    web_client,
)
from idp.plugin import IdPFactory

pytestmark = pytest.mark.idp

WEB_REDIRECT = "http://127.0.0.1:8000/auth/oidc/callback"
BROWSER_SCRIPT = Path(__file__).resolve().parent / "browser.py"


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def b64json(part: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


def jwt_header(token: str) -> dict[str, Any]:
    return b64json(token.split(".")[0])


def jwt_claims(token: str) -> dict[str, Any]:
    return b64json(token.split(".")[1])


def verify(idp: OpenIDProvider, token: str) -> dict[str, Any]:
    """Verify a JWT against the IdP's published JWKS (proves kid/alg/keys are consistent)."""
    keys = KeySet.import_key_set(idp.jwks())  # type: ignore[arg-type]
    alg = jwt_header(token)["alg"]
    claims: dict[str, Any] = jwt.decode(token, keys, algorithms=[alg]).claims
    return claims


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def web_tokens(
    idp: OpenIDProvider,
    username: str = "alice",
    password: str = "alice-password",
    *,
    redirect_uri: str = WEB_REDIRECT,
    scope: str = "openid profile email groups",
    browser: httpx.Client | None = None,
) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    url = idp.authorization_url(
        WEB_CLIENT_ID, redirect_uri, code_challenge=challenge, scope=scope, state="st-1"
    )
    location = idp.login(url, username, password, client=browser)
    params = query(location)
    assert location.startswith(redirect_uri + "?")
    assert params["state"] == "st-1"
    assert params["iss"] == idp.issuer  # RFC 9207
    resp = httpx.post(
        idp.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(WEB_CLIENT_ID, WEB_CLIENT_SECRET),
    )
    assert resp.status_code == 200, resp.text
    tokens: dict[str, Any] = resp.json()
    return tokens


def refresh(
    idp: OpenIDProvider,
    refresh_token: str,
    client_id: str = WEB_CLIENT_ID,
    secret: str | None = WEB_CLIENT_SECRET,
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if secret is None:
        data["client_id"] = client_id
        return httpx.post(idp.endpoint("token"), data=data)
    return httpx.post(idp.endpoint("token"), data=data, auth=(client_id, secret))


class Receiver:
    """A tiny local HTTP server recording requests (RP callback / back-channel logout)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.event = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                outer.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "form": {k: v[0] for k, v in parse_qs(body).items()},
                    }
                )
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")
                outer.event.set()

            do_GET = _record
            do_POST = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.requests) >= count, f"got {len(self.requests)} requests, want {count}"
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def web_idp(idp: OpenIDProvider) -> OpenIDProvider:
    assert WEB_REDIRECT in idp.web_redirect_uris
    return idp


# ------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------


def test_discovery(web_idp: OpenIDProvider) -> None:
    meta = httpx.get(web_idp.discovery_url).json()
    assert meta["issuer"] == web_idp.issuer
    for key in (
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "end_session_endpoint",
        "device_authorization_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ):
        assert meta[key].startswith(web_idp.issuer + "/"), key
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    assert {"openid", "profile", "email", "groups", "offline_access"} <= set(
        meta["scopes_supported"]
    )
    assert DEVICE_GRANT in meta["grant_types_supported"]
    assert web_idp.jwks()["keys"][0]["alg"] == "RS256"


def test_code_flow_tokens_claims_and_refresh_rotation(web_idp: OpenIDProvider) -> None:
    tokens = web_tokens(web_idp)
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    claims = verify(web_idp, tokens["id_token"])
    assert claims["iss"] == web_idp.issuer
    assert claims["aud"] == WEB_CLIENT_ID
    assert claims["sub"] == "alice-sub"
    assert claims["preferred_username"] == "alice"
    assert claims["email"] == "alice@example.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Anderson"
    assert claims["groups"] == ["developers"]
    assert claims["sid"]
    assert claims["nonce"]

    userinfo = httpx.get(
        web_idp.endpoint("userinfo"),
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    ).json()
    assert userinfo["sub"] == "alice-sub"
    assert userinfo["groups"] == ["developers"]

    resp = refresh(web_idp, tokens["refresh_token"])
    assert resp.status_code == 200, resp.text
    refreshed = resp.json()
    assert refreshed["refresh_token"] != tokens["refresh_token"]  # rotation
    assert jwt_claims(refreshed["id_token"])["sub"] == "alice-sub"
    # the rotated-away token is dead (and its reuse revokes the grant, as per the spec)
    again = refresh(web_idp, tokens["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_client_secret_post_and_session_reuse(web_idp: OpenIDProvider) -> None:
    browser = web_idp.new_browser()
    web_tokens(web_idp, "bob", "bob-password", browser=browser)
    # same cookie jar: no credentials needed the second time
    verifier, challenge = pkce_pair()
    url = web_idp.authorization_url(WEB_POST_CLIENT_ID, WEB_REDIRECT, code_challenge=challenge)
    location = web_idp.login(url, client=browser)
    resp = httpx.post(
        web_idp.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": query(location)["code"],
            "redirect_uri": WEB_REDIRECT,
            "code_verifier": verifier,
            "client_id": WEB_POST_CLIENT_ID,
            "client_secret": WEB_POST_CLIENT_SECRET,
        },
    )
    assert resp.status_code == 200, resp.text
    assert jwt_claims(resp.json()["id_token"])["sub"] == "bob-sub"


def test_pkce_is_required_and_bad_password_is_refused(web_idp: OpenIDProvider) -> None:
    url = f"{web_idp.endpoint('authorization')}?" + urlencode(
        {
            "client_id": WEB_CLIENT_ID,
            "redirect_uri": WEB_REDIRECT,
            "response_type": "code",
            "scope": "openid",
            "state": "x",
        }
    )
    location = web_idp.login(url, "alice", "alice-password")
    assert query(location)["error"] == "invalid_request"
    _, challenge = pkce_pair()
    with pytest.raises(IdPLoginError, match="Invalid username or password"):
        web_idp.login(web_idp.authorization_url(code_challenge=challenge), "alice", "nope")


def test_rotate_keys_new_kid_old_refresh_token_still_works(web_idp: OpenIDProvider) -> None:
    tokens = web_tokens(web_idp, "carol", "carol-password")
    old_kid = jwt_header(tokens["id_token"])["kid"]
    assert jwt_claims(tokens["id_token"])["email_verified"] is False

    new_kid = web_idp.rotate_keys(keep_old=True)
    assert new_kid != old_kid
    kids = [k["kid"] for k in web_idp.jwks()["keys"]]
    assert kids[0] == new_kid
    assert old_kid in kids

    resp = refresh(web_idp, tokens["refresh_token"])
    assert resp.status_code == 200, resp.text
    id_token = resp.json()["id_token"]
    assert jwt_header(id_token)["kid"] == new_kid
    assert verify(web_idp, id_token)["sub"] == "carol-sub"
    # the old token still verifies while the old key is published
    assert verify(web_idp, tokens["id_token"])["sub"] == "carol-sub"

    newest = web_idp.rotate_keys(keep_old=False)
    assert [k["kid"] for k in web_idp.jwks()["keys"]] == [newest]


def test_disable_user_kills_refresh_and_login(web_idp: OpenIDProvider) -> None:
    web_idp.upsert_user(
        "dave-sub",
        "dave",
        "dave-password",
        email="dave@example.com",
        email_verified=True,
        name="Dave",
        groups=["temps"],
    )
    tokens = web_tokens(web_idp, "dave", "dave-password")
    assert jwt_claims(tokens["id_token"])["groups"] == ["temps"]
    web_idp.disable_user("dave-sub")
    resp = refresh(web_idp, tokens["refresh_token"])
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"
    _, challenge = pkce_pair()
    with pytest.raises(IdPLoginError, match="disabled"):
        web_idp.login(web_idp.authorization_url(code_challenge=challenge), "dave", "dave-password")
    web_idp.enable_user("dave-sub")
    web_tokens(web_idp, "dave", "dave-password")


def test_native_client_any_loopback_port(web_idp: OpenIDProvider) -> None:
    redirect = "http://127.0.0.1:54321/callback"
    verifier, challenge = pkce_pair()
    url = web_idp.authorization_url(CLI_CLIENT_ID, redirect, code_challenge=challenge)
    location = web_idp.login(url, "alice", "alice-password")
    assert location.startswith(redirect + "?")
    resp = httpx.post(
        web_idp.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": query(location)["code"],
            "redirect_uri": redirect,
            "code_verifier": verifier,
            "client_id": CLI_CLIENT_ID,
        },
    )
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert jwt_claims(tokens["id_token"])["aud"] == CLI_CLIENT_ID
    rotated = refresh(web_idp, tokens["refresh_token"], CLI_CLIENT_ID, None)
    assert rotated.status_code == 200, rotated.text
    # a non-loopback host is not accepted
    bad = web_idp.authorization_url(
        CLI_CLIENT_ID, "http://evil.test:54321/callback", code_challenge=challenge
    )
    with pytest.raises(IdPLoginError, match="redirect_uri"):
        web_idp.login(bad, "alice", "alice-password")


def test_device_flow(web_idp: OpenIDProvider) -> None:
    resp = httpx.post(
        web_idp.endpoint("device_authorization"),
        data={"client_id": CLI_CLIENT_ID, "scope": "openid profile email groups"},
    )
    assert resp.status_code == 200, resp.text
    device = resp.json()
    token_request = {
        "grant_type": DEVICE_GRANT,
        "device_code": device["device_code"],
        "client_id": CLI_CLIENT_ID,
    }
    pending = httpx.post(web_idp.endpoint("token"), data=token_request)
    assert pending.json()["error"] == "authorization_pending"

    web_idp.confirm_device((device["verification_uri"], device["user_code"]), "bob", "bob-password")
    done = httpx.post(web_idp.endpoint("token"), data=token_request)
    assert done.status_code == 200, done.text
    tokens = done.json()
    assert jwt_claims(tokens["id_token"])["sub"] == "bob-sub"
    assert tokens["refresh_token"]

    # verification_uri_complete works too
    device2 = httpx.post(
        web_idp.endpoint("device_authorization"),
        data={"client_id": CLI_CLIENT_ID, "scope": "openid"},
    ).json()
    web_idp.confirm_device(device2["verification_uri_complete"], "alice", "alice-password")
    done2 = httpx.post(
        web_idp.endpoint("token"),
        data={**token_request, "device_code": device2["device_code"]},
    )
    assert jwt_claims(done2.json()["id_token"])["sub"] == "alice-sub"


def test_backchannel_and_rp_initiated_logout(idp_factory: IdPFactory, receiver: Receiver) -> None:
    idp = idp_factory(
        web_redirect_uris=[receiver.url("/auth/oidc/callback")],
        backchannel_logout_uri=receiver.url("/auth/oidc/backchannel-logout"),
    )
    browser = idp.new_browser()
    tokens = web_tokens(idp, redirect_uri=receiver.url("/auth/oidc/callback"), browser=browser)
    sid = jwt_claims(tokens["id_token"])["sid"]
    assert idp.sessions()[0]["clients"][WEB_CLIENT_ID]["sid"] == sid

    result = idp.backchannel_logout(WEB_CLIENT_ID, "alice-sub")
    assert result["delivered"] is True
    request = receiver.wait(1)[0]
    assert request["method"] == "POST"
    assert request["path"] == "/auth/oidc/backchannel-logout"
    logout_token = request["form"]["logout_token"]
    claims = verify(idp, logout_token)
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == WEB_CLIENT_ID
    assert claims["sub"] == "alice-sub"
    assert claims["sid"] == sid
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    assert "nonce" not in claims
    assert jwt_header(logout_token)["typ"] == "logout+jwt"

    # RP-initiated logout: confirm form, back-channel token, redirect back with state
    end = f"{idp.endpoint('end_session')}?" + urlencode(
        {
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": receiver.url("/login"),
            "state": "bye",
        }
    )
    location = idp.end_session(end, browser)
    assert location == receiver.url("/login") + "?state=bye"
    second = receiver.wait(2)[1]
    assert verify(idp, second["form"]["logout_token"])["sid"] == sid
    assert idp.sessions() == []
    # the grant is gone with the session
    assert refresh(idp, tokens["refresh_token"]).json()["error"] == "invalid_grant"

    # a failing RP is reported, not raised
    other = idp.backchannel_logout(WEB_CLIENT_ID, "alice-sub", sid="whatever")
    assert other["delivered"] is True
    idp.add_client(
        web_client(
            "broken-rp",
            "s3cret",
            [receiver.url("/cb")],
            backchannel_logout_uri="http://127.0.0.1:9/nothing-listens-here",
        )
    )
    failed = idp.backchannel_logout("broken-rp", "alice-sub", sid="x")
    assert failed["delivered"] is False


def test_issuer_path_short_id_token_ttl_userinfo_only_claims_es256(
    idp_factory: IdPFactory,
) -> None:
    idp = idp_factory(
        issuer_path="/tenant-a",
        ttl={"IdToken": 5},
        claims_in_id_token=False,
        algs=["RS256", "ES256"],
        web_redirect_uris=[WEB_REDIRECT],
    )
    assert idp.issuer.endswith("/tenant-a")
    meta = httpx.get(f"{idp.issuer}/.well-known/openid-configuration").json()
    assert meta["issuer"] == idp.issuer
    assert meta["token_endpoint"] == f"{idp.issuer}/token"
    assert {"RS256", "ES256"} <= set(meta["id_token_signing_alg_values_supported"])
    assert {k["kty"] for k in idp.jwks()["keys"]} == {"RSA", "EC"}

    tokens = web_tokens(idp)  # asserts iss == issuer-with-path
    claims = verify(idp, tokens["id_token"])
    assert claims["exp"] - claims["iat"] == 5
    assert "email" not in claims
    assert "groups" not in claims
    userinfo = httpx.get(
        idp.endpoint("userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    assert userinfo["email"] == "alice@example.com"
    assert userinfo["groups"] == ["developers"]

    idp.add_client(
        web_client("es-client", "es-secret", [WEB_REDIRECT], id_token_signed_response_alg="ES256")
    )
    verifier, challenge = pkce_pair()
    location = idp.login(
        idp.authorization_url("es-client", WEB_REDIRECT, code_challenge=challenge),
        "bob",
        "bob-password",
    )
    resp = httpx.post(
        idp.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": query(location)["code"],
            "redirect_uri": WEB_REDIRECT,
            "code_verifier": verifier,
        },
        auth=("es-client", "es-secret"),
    )
    assert jwt_header(resp.json()["id_token"])["alg"] == "ES256"
    assert verify(idp, resp.json()["id_token"])["sub"] == "bob-sub"


def test_restart_keeps_port_and_keys_but_not_sessions(idp_factory: IdPFactory) -> None:
    idp = idp_factory(web_redirect_uris=[WEB_REDIRECT])
    tokens = web_tokens(idp)
    idp.rotate_keys()
    kids = [k["kid"] for k in idp.jwks()["keys"]]
    port = idp.port
    idp.restart()
    assert idp.port == port
    assert [k["kid"] for k in idp.jwks()["keys"]] == kids
    assert verify(idp, tokens["id_token"])["sub"] == "alice-sub"
    assert refresh(idp, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_browser_script_foreground_and_via_webbrowser(
    web_idp: OpenIDProvider, receiver: Receiver, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TEST_IDP_USERNAME": "alice",
        "TEST_IDP_PASSWORD": "alice-password",
        "TEST_IDP_BROWSER_LOG": str(tmp_path / "browser.log"),
    }
    _, challenge = pkce_pair()
    url = web_idp.authorization_url(
        CLI_CLIENT_ID, receiver.url("/callback"), code_challenge=challenge, state="s1"
    )
    proc = subprocess.run(
        [sys.executable, str(BROWSER_SCRIPT), "--foreground", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    first = receiver.wait(1)[0]
    assert first["path"].startswith("/callback?")
    assert query(first["path"])["state"] == "s1"

    # as Python's webbrowser runs $BROWSER (GenericBrowser waits for the process)
    os.environ.update({k: env[k] for k in ("TEST_IDP_USERNAME", "TEST_IDP_PASSWORD")})
    try:
        opener = webbrowser.GenericBrowser([sys.executable, str(BROWSER_SCRIPT), "%s"])
        url2 = web_idp.authorization_url(
            CLI_CLIENT_ID, receiver.url("/callback"), code_challenge=challenge, state="s2"
        )
        assert opener.open(url2)
    finally:
        for k in ("TEST_IDP_USERNAME", "TEST_IDP_PASSWORD"):
            os.environ.pop(k, None)
    second = receiver.wait(2)[1]
    assert query(second["path"])["state"] == "s2"
