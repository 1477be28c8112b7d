"""Run the test OpenID Provider (``tests/idp/server.mjs``, built on node ``oidc-provider``).

Import as ``from idp.fixture import OpenIDProvider`` (``tests/`` on ``sys.path``).

    with OpenIDProvider(web_redirect_uris=["http://127.0.0.1:8123/auth/oidc/callback"]) as idp:
        browser = idp.new_browser()
        location = idp.login(authorization_url, "alice", "alice-password", client=browser)
        # location == "http://127.0.0.1:8123/auth/oidc/callback?code=...&state=...&iss=..."

Demo mode (foreground until Ctrl-C)::

    python tests/idp/fixture.py --port 9000 --web-redirect http://127.0.0.1:8000/auth/oidc/callback

Needs ``node`` (>= 20) and ``npm ci --prefix tests/idp``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

IDP_DIR = Path(__file__).resolve().parent
SERVER_SCRIPT = IDP_DIR / "server.mjs"
NODE_MODULES = IDP_DIR / "node_modules"
INSTALL_HINT = "run `npm ci --prefix tests/idp` (needs Node.js >= 20)"

WEB_CLIENT_ID = "gatehouse-web"
WEB_CLIENT_SECRET = "web-secret"
WEB_POST_CLIENT_ID = "gatehouse-web-post"
WEB_POST_CLIENT_SECRET = "web-post-secret"
CLI_CLIENT_ID = "gatehouse-cli"
CLI_REDIRECT_URI = "http://127.0.0.1/callback"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

DEFAULT_USERS: list[dict[str, Any]] = [
    {
        "sub": "alice-sub",
        "username": "alice",
        "password": "alice-password",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Anderson",
        "groups": ["developers"],
    },
    {
        "sub": "bob-sub",
        "username": "bob",
        "password": "bob-password",
        "email": "bob@example.com",
        "email_verified": True,
        "name": "Bob Brown",
        "groups": ["operators"],
    },
    {
        "sub": "carol-sub",
        "username": "carol",
        "password": "carol-password",
        "email": "carol@example.com",
        "email_verified": False,
        "name": "Carol Clark",
        "groups": ["developers", "admins"],
    },
    {
        "sub": "mallory-sub",
        "username": "mallory",
        "password": "mallory-password",
        "email": "mallory@example.com",
        "email_verified": True,
        "name": "Mallory Moore",
        "groups": [],
    },
]


class IdPError(RuntimeError):
    """The test IdP failed (did not start, admin call failed, unexpected page ...)."""


class IdPNotInstalledError(IdPError):
    """``node`` or ``tests/idp/node_modules`` is missing."""


class IdPLoginError(IdPError):
    """The IdP refused the login (wrong password, disabled user) or showed an error page."""


def check_installed() -> None:
    """Raise :class:`IdPNotInstalledError` with install instructions if the IdP cannot run."""
    if shutil.which("node") is None:
        raise IdPNotInstalledError(f"`node` is not on PATH; install Node.js and {INSTALL_HINT}")
    if not (NODE_MODULES / "oidc-provider").is_dir():
        raise IdPNotInstalledError(f"{NODE_MODULES} is missing oidc-provider; {INSTALL_HINT}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pkce_pair() -> tuple[str, str]:
    """Return ``(code_verifier, code_challenge)`` for PKCE S256."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


# --------------------------------------------------------------------------------------------
# Client metadata helpers
# --------------------------------------------------------------------------------------------


def web_client(
    client_id: str = WEB_CLIENT_ID,
    client_secret: str = WEB_CLIENT_SECRET,
    redirect_uris: Sequence[str] = (),
    *,
    token_endpoint_auth_method: str = "client_secret_basic",
    post_logout_redirect_uris: Sequence[str] | None = None,
    backchannel_logout_uri: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """oidc-provider metadata for a confidential web client (code + refresh_token grants).

    ``post_logout_redirect_uris`` defaults to ``{origin}/login`` and ``{origin}/`` of every
    redirect URI.
    """
    if post_logout_redirect_uris is None:
        origins = dict.fromkeys(_origin(u) for u in redirect_uris)
        post_logout_redirect_uris = [p for o in origins for p in (f"{o}/login", f"{o}/")]
    meta: dict[str, Any] = {
        "client_id": client_id,
        "client_secret": client_secret,
        "client_name": client_id,
        "application_type": "web",
        "token_endpoint_auth_method": token_endpoint_auth_method,
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout_redirect_uris),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    if backchannel_logout_uri:
        meta["backchannel_logout_uri"] = backchannel_logout_uri
        meta["backchannel_logout_session_required"] = True
    meta.update(extra)
    return meta


def native_client(
    client_id: str = CLI_CLIENT_ID,
    redirect_uris: Sequence[str] = (CLI_REDIRECT_URI,),
    **extra: Any,
) -> dict[str, Any]:
    """Metadata for a public native client (loopback redirect on any port, device flow)."""
    meta: dict[str, Any] = {
        "client_id": client_id,
        "client_name": client_id,
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "redirect_uris": list(redirect_uris),
        "grant_types": ["authorization_code", "refresh_token", DEVICE_GRANT],
        "response_types": ["code"],
    }
    meta.update(extra)
    return meta


# --------------------------------------------------------------------------------------------
# A tiny HTTP "browser"
# --------------------------------------------------------------------------------------------


@dataclass
class _Form:
    id: str | None
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    input_names: set[str] = field(default_factory=set)
    buttons: list[dict[str, str]] = field(default_factory=list)


class _PageParser(HTMLParser):
    """Collect forms (with inputs/buttons, including ``form=`` associated ones) and markers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.page: str | None = None
        self.title = ""
        self.error: str | None = None
        self._current: _Form | None = None
        self._in_title = False
        self._in_error = False
        self._error_parts: list[str] = []
        self._orphans: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "body" and "data-page" in a:
            self.page = a["data-page"]
        elif tag == "title":
            self._in_title = True
        elif tag == "form":
            self._current = _Form(
                id=a.get("id"), action=a.get("action", ""), method=a.get("method", "get").upper()
            )
            self.forms.append(self._current)
        elif tag in ("input", "button", "select", "textarea"):
            if "form" in a:
                self._orphans.append((tag, a))
            elif self._current is not None:
                self._add(self._current, tag, a)
        if a.get("id") == "error":
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
        elif tag == "title":
            self._in_title = False
        elif tag == "p" and self._in_error:
            self._in_error = False
            self.error = " ".join("".join(self._error_parts).split())

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._in_error:
            self._error_parts.append(data)

    def close(self) -> None:
        super().close()
        by_id = {f.id: f for f in self.forms if f.id}
        for tag, a in self._orphans:
            form = by_id.get(a["form"])
            if form is not None:
                self._add(form, tag, a)
        if self._in_error and self.error is None:
            self.error = " ".join("".join(self._error_parts).split())

    @staticmethod
    def _add(form: _Form, tag: str, a: dict[str, str]) -> None:
        kind = a.get("type", "submit" if tag == "button" else "text").lower()
        if kind == "submit":
            form.buttons.append(a)
            return
        name = a.get("name")
        if not name:
            return
        form.input_names.add(name)
        if kind in ("checkbox", "radio") and "checked" not in a:
            return
        form.fields.append((name, a.get("value", "")))


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


@dataclass
class BrowseResult:
    """Where a browse ended: ``location`` outside the IdP, or an IdP ``page`` marker."""

    location: str | None
    page: str | None
    url: str
    response: httpx.Response | None = None


def new_browser(timeout: float = 10.0) -> httpx.Client:
    """An httpx client with a cookie jar that does NOT follow redirects (we walk them)."""
    return httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False)


def browse(
    url: str,
    *,
    idp_origin: str | None = None,
    username: str | None = None,
    password: str | None = None,
    user_code: str | None = None,
    logout: bool = True,
    cancel: bool = False,
    client: httpx.Client | None = None,
    max_steps: int = 40,
) -> BrowseResult:
    """Walk the IdP pages starting at ``url`` like a user would.

    Fills the login form (``username``/``password``), the device user-code form, confirms the
    device, answers the logout confirmation (``logout=True``: "Yes, sign me out"), submits
    auto-posting forms (``cancel=True``: presses Cancel on the login form instead), and stops
    at the first redirect whose origin differs from
    ``idp_origin`` (default: the origin of ``url``) WITHOUT requesting it, or at a final IdP
    page (``device-success``, ``logout-success``). Raises :class:`IdPLoginError` on a refused
    login or an IdP error page.
    """
    own = client is None
    http = client or new_browser()
    origin = (idp_origin or _origin(url)).lower()
    method, target, data = "GET", url, None
    logins = 0
    try:
        for _ in range(max_steps):
            resp = http.request(method, target, data=data)
            current = str(resp.url)
            if resp.is_redirect:
                location = urljoin(current, resp.headers["location"])
                if _origin(location) != origin:
                    return BrowseResult(location=location, page=None, url=current, response=resp)
                method, target, data = "GET", location, None
                continue
            page = _parse(resp.text)
            marker = page.page
            if marker in ("device-success", "logout-success"):
                return BrowseResult(location=None, page=marker, url=current, response=resp)
            if marker == "error" or (marker is None and not page.forms):
                raise IdPLoginError(
                    f"IdP page {current} (HTTP {resp.status_code}): "
                    f"{page.error or page.title or resp.text[:300]}"
                )
            if marker == "login" and cancel:
                form = page.forms[0]
                values = {**dict(form.fields), "cancel": "yes"}
            elif marker == "login":
                if logins and page.error:
                    raise IdPLoginError(f"login refused for {username!r}: {page.error}")
                if username is None or password is None:
                    raise IdPLoginError("the IdP asks for credentials but none were given")
                logins += 1
                form = page.forms[0]
                values = {**dict(form.fields), "username": username, "password": password}
            elif marker == "device-input":
                if page.error and user_code is not None and data is not None:
                    raise IdPLoginError(f"user code refused: {page.error}")
                if user_code is None:
                    raise IdPLoginError("the IdP asks for a user code but none was given")
                form = page.forms[0]
                values = {**dict(form.fields), "user_code": user_code}
            elif marker == "device-confirm":
                form = page.forms[0]
                values = dict(form.fields)
            elif marker == "logout":
                form = page.forms[0]
                values = dict(form.fields)
                if logout:
                    values["logout"] = "yes"
            else:  # an auto-submitting form_post page (device code, end_session without session)
                form = page.forms[0]
                values = dict(form.fields)
            action = urljoin(current, form.action or current)
            if _origin(action) != origin:
                raise IdPError(f"form posts outside the IdP ({action}); use response_mode=query")
            if form.method == "POST":
                method, target, data = "POST", action, values
            else:
                method, target, data = "GET", f"{action}?{urlencode(values)}", None
        raise IdPError(f"gave up after {max_steps} steps at {target}")
    finally:
        if own:
            http.close()


# --------------------------------------------------------------------------------------------
# The provider process
# --------------------------------------------------------------------------------------------


class OpenIDProvider:
    """A real OpenID Provider (node oidc-provider) running on 127.0.0.1 for tests.

    ``clients``: full oidc-provider client metadata; ``None`` builds the defaults at
    :meth:`start` (``gatehouse-web`` with ``client_secret_basic``, ``gatehouse-web-post`` with
    ``client_secret_post`` and the same URIs, and the public native ``gatehouse-cli``).
    ``users``: dicts with ``sub, username, password, email, email_verified, name, groups``
    (optional ``extra_claims`` dict, ``disabled``); ``None`` = :data:`DEFAULT_USERS`.
    ``ttl``: seconds per oidc-provider artifact, e.g. ``{"IdToken": 5, "AccessToken": 60,
    "RefreshToken": 600, "Session": 600, "DeviceCode": 120}``.
    ``refresh_expires_with_session``: ``None`` (oidc-provider default) = refresh/access tokens
    die with the IdP session (RP-initiated logout, :meth:`logout_user`, :meth:`disable_user`)
    unless ``offline_access`` was granted (request it with ``prompt=consent``); ``True``/``False``
    = always/never.
    ``id_token_on_refresh=False``: refresh responses carry no new ID token (OIDC Core 12.2).
    ``claims_in_id_token=False``: profile and email claims only in UserInfo.
    ``iss_on_errors=False``: error redirects (Cancel on the login page) carry no ``iss``
    although discovery advertises it.
    """

    def __init__(
        self,
        clients: list[dict[str, Any]] | None = None,
        users: list[dict[str, Any]] | None = None,
        issuer_path: str = "",
        ttl: dict[str, int] | None = None,
        claims_in_id_token: bool = True,
        algs: Sequence[str] = ("RS256",),
        *,
        web_redirect_uris: Iterable[str] = (),
        post_logout_redirect_uris: Iterable[str] | None = None,
        backchannel_logout_uri: str | None = None,
        cli_redirect_uris: Iterable[str] = (CLI_REDIRECT_URI,),
        groups_in_profile: bool = True,
        refresh_expires_with_session: bool | None = None,
        id_token_on_refresh: bool = True,
        iss_on_errors: bool = True,
        port: int | None = None,
        host: str = "127.0.0.1",
        admin_token: str | None = None,
        start_timeout: float = 60.0,
        log_requests: bool = True,
    ) -> None:
        path = issuer_path.strip("/")
        self.issuer_path = f"/{path}" if path else ""
        self.host = host
        self.clients = copy.deepcopy(clients) if clients is not None else None
        self.users = copy.deepcopy(users if users is not None else DEFAULT_USERS)
        self.ttl = dict(ttl or {})
        self.claims_in_id_token = claims_in_id_token
        self.algs = list(algs)
        self.web_redirect_uris: list[str] = list(web_redirect_uris)
        self.post_logout_redirect_uris = (
            list(post_logout_redirect_uris) if post_logout_redirect_uris is not None else None
        )
        self.backchannel_logout_uri = backchannel_logout_uri
        self.cli_redirect_uris = list(cli_redirect_uris)
        self.groups_in_profile = groups_in_profile
        self.refresh_expires_with_session = refresh_expires_with_session
        self.id_token_on_refresh = id_token_on_refresh
        self.iss_on_errors = iss_on_errors
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.start_timeout = start_timeout
        self.log_requests = log_requests
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log_file: Any = None
        self._extra_clients: list[dict[str, Any]] = []
        self._metadata: dict[str, Any] | None = None

    # ---- configuration before start -----------------------------------------------------

    def add_web_redirect(self, uri: str) -> None:
        """Register another redirect URI for gatehouse-web (and gatehouse-web-post)."""
        if self.running:
            raise IdPError("add_web_redirect() must be called before start(); use add_client()")
        if uri not in self.web_redirect_uris:
            self.web_redirect_uris.append(uri)

    def client_configs(self) -> list[dict[str, Any]]:
        """The client metadata list given to the server."""
        if self.clients is not None:
            base = copy.deepcopy(self.clients)
        else:
            bcl = self.backchannel_logout_uri
            if bcl is None and self.web_redirect_uris:
                bcl = f"{_origin(self.web_redirect_uris[0])}/auth/oidc/backchannel-logout"
            common: dict[str, Any] = {
                "redirect_uris": self.web_redirect_uris,
                "post_logout_redirect_uris": self.post_logout_redirect_uris,
                "backchannel_logout_uri": bcl,
            }
            base = [
                web_client(WEB_CLIENT_ID, WEB_CLIENT_SECRET, **common),
                web_client(
                    WEB_POST_CLIENT_ID,
                    WEB_POST_CLIENT_SECRET,
                    token_endpoint_auth_method="client_secret_post",
                    **common,
                ),
                native_client(CLI_CLIENT_ID, self.cli_redirect_uris),
            ]
        return base + copy.deepcopy(self._extra_clients)

    def config(self) -> dict[str, Any]:
        assert self._tmp is not None
        return {
            "issuer": self.issuer,
            "host": self.host,
            "port": self.port,
            "admin_token": self.admin_token,
            "clients": self.client_configs(),
            "users": self.users,
            "ttl": self.ttl,
            "claims_in_id_token": self.claims_in_id_token,
            "groups_in_profile": self.groups_in_profile,
            "refresh_expires_with_session": self.refresh_expires_with_session,
            "id_token_on_refresh": self.id_token_on_refresh,
            "iss_on_errors": self.iss_on_errors,
            "algs": self.algs,
            "state_file": str(Path(self._tmp.name) / "state.json"),
            "quiet_requests": not self.log_requests,
        }

    # ---- properties ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise IdPError("the IdP has no port yet; call start()")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}{self.issuer_path}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}/__admin"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return Path(self._tmp.name) / "idp.log" if self._tmp else None

    def log_text(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> OpenIDProvider:
        if self.running:
            return self
        check_installed()
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gatehouse-idp-")
        chosen_port = self._port is None
        if chosen_port:
            self._port = free_port(self.host)
        config_path = Path(self._tmp.name) / "config.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        try:
            self._launch(config_path)
        except IdPError:
            if not chosen_port:
                raise
            # A port we picked may have been taken meanwhile by another process of a parallel
            # run, or a loaded machine stalled the start: one more try on a fresh port.
            self._port = free_port(self.host)
            config_path.write_text(json.dumps(self.config(), indent=2))
            self._launch(config_path)
        return self

    def _launch(self, config_path: Path) -> None:
        assert self._tmp is not None
        self._log_file = open(Path(self._tmp.name) / "idp.log", "ab")
        launch_id = secrets.token_hex(8)
        self._proc = subprocess.Popen(
            ["node", str(SERVER_SCRIPT), str(config_path)],
            cwd=IDP_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            start_new_session=True,
            env={**os.environ, "TEST_IDP_LAUNCH_ID": launch_id},
        )
        started = time.monotonic()
        deadline = started + self.start_timeout
        last_error: Exception | None = None
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break
                try:
                    # our own process (not a leftover on the same port) and its discovery
                    health = http.get(
                        f"{self.admin_url}/health", headers={"X-Admin-Token": self.admin_token}
                    )
                    if health.status_code != 200 or health.json().get("launch_id") != launch_id:
                        raise IdPError(f"health check answered HTTP {health.status_code}")
                    resp = http.get(self.discovery_url)
                    if resp.status_code == 200 and resp.json().get("issuer") == self.issuer:
                        self._metadata = resp.json()
                        return
                    last_error = IdPError(f"discovery answered HTTP {resp.status_code}")
                except (httpx.HTTPError, ValueError, IdPError) as exc:
                    last_error = exc
                time.sleep(0.05)
        code = self._proc.poll()
        self._terminate()
        raise IdPError(
            f"the test IdP did not come up at {self.discovery_url} within "
            f"{time.monotonic() - started:.1f} s (exit code {code}, last error {last_error!r}); "
            f"log:\n{self.log_text()[-4000:]}"
        )

    def _terminate(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        """Stop the server and remove its temp dir (config, keys, log)."""
        try:
            self._terminate()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
            self._metadata = None

    def restart(self, *, downtime: float = 0.0) -> None:
        """Stop and start again on the same port with the same signing keys, users and clients.

        In-memory state (IdP sessions, grants, codes, access/refresh tokens) is LOST.
        """
        if self._tmp is None:
            raise IdPError("restart() needs a started IdP")
        self._terminate()
        if downtime:
            time.sleep(downtime)
        self._launch(Path(self._tmp.name) / "config.json")

    def kill(self) -> None:
        """Stop the process but keep the temp dir so :meth:`restart` can bring it back."""
        self._terminate()

    def __enter__(self) -> OpenIDProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()

    # ---- metadata -----------------------------------------------------------------------

    def metadata(self, *, refresh: bool = False) -> dict[str, Any]:
        """The discovery document (cached)."""
        if self._metadata is None or refresh:
            resp = httpx.get(self.discovery_url, timeout=5.0, trust_env=False)
            resp.raise_for_status()
            self._metadata = resp.json()
        return self._metadata

    def endpoint(self, name: str) -> str:
        """A discovery URL, e.g. ``endpoint("token")`` -> ``metadata()["token_endpoint"]``."""
        key = name if name.endswith(("_endpoint", "_uri")) else f"{name}_endpoint"
        return str(self.metadata()[key])

    def jwks(self) -> dict[str, Any]:
        resp = httpx.get(str(self.metadata()["jwks_uri"]), timeout=5.0, trust_env=False)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def authorization_url(
        self,
        client_id: str = WEB_CLIENT_ID,
        redirect_uri: str | None = None,
        *,
        code_challenge: str,
        scope: str = "openid profile email groups",
        state: str | None = None,
        nonce: str | None = None,
        **extra: str,
    ) -> str:
        """Build an authorization-code request URL (PKCE S256)."""
        if redirect_uri is None:
            if client_id == CLI_CLIENT_ID:
                redirect_uri = self.cli_redirect_uris[0]
            elif self.web_redirect_uris:
                redirect_uri = self.web_redirect_uris[0]
            else:
                raise IdPError("redirect_uri is required")
        params = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": scope,
            "state": state or secrets.token_urlsafe(16),
            "nonce": nonce or secrets.token_urlsafe(16),
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{self.endpoint('authorization')}?{urlencode(params)}"

    # ---- admin API ----------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        resp = httpx.request(
            method,
            f"{self.admin_url}/{path.lstrip('/')}",
            json=dict(body) if body is not None else None,
            headers={"X-Admin-Token": self.admin_token},
            timeout=15.0,
            trust_env=False,
        )
        if resp.status_code >= 400 and resp.status_code != 502:
            raise IdPError(f"admin {method} {path} -> HTTP {resp.status_code}: {resp.text}")
        return resp.json()

    def rotate_keys(self, keep_old: bool = True) -> str:
        """Generate a new signing key (one per configured alg) and sign with it from now on.

        ``keep_old=False`` drops the previous keys from the JWKS. Sessions, grants and tokens
        survive. Returns the new kid (of the first configured alg, RS256 by default).
        """
        return str(self._admin("POST", "rotate-keys", {"keep_old": keep_old})["kid"])

    def upsert_user(
        self,
        sub: str,
        username: str | None = None,
        password: str | None = None,
        *,
        email: str | None = None,
        email_verified: bool | None = None,
        name: str | None = None,
        groups: list[str] | None = None,
        extra_claims: dict[str, Any] | None = None,
        disabled: bool | None = None,
    ) -> dict[str, Any]:
        """Add a user or update the given fields of an existing one (``sub`` is the key)."""
        body: dict[str, Any] = {"sub": sub}
        for key, value in (
            ("username", username),
            ("password", password),
            ("email", email),
            ("email_verified", email_verified),
            ("name", name),
            ("groups", groups),
            ("extra_claims", extra_claims),
            ("disabled", disabled),
        ):
            if value is not None:
                body[key] = value
        user: dict[str, Any] = self._admin("POST", "users", body)["user"]
        return user

    def disable_user(self, sub: str) -> dict[str, Any]:
        """Refuse new logins and revoke all grants/tokens/sessions of ``sub``."""
        result: dict[str, Any] = self._admin("POST", f"users/{sub}/disable")
        return result

    def enable_user(self, sub: str) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("POST", f"users/{sub}/enable")
        return result

    def logout_user(self, sub: str) -> dict[str, Any]:
        """Silently end every IdP session of ``sub`` and revoke its grants (no notifications)."""
        result: dict[str, Any] = self._admin("POST", f"users/{sub}/logout")
        return result

    def sessions(self) -> list[dict[str, Any]]:
        """The IdP sessions: ``[{id, uid, sub, login_ts, exp, clients}]``.

        ``clients`` maps each client of the session to ``{sid, grant_id}`` (``sid`` as in the ID
        and logout tokens).
        """
        result: list[dict[str, Any]] = self._admin("GET", "sessions")["sessions"]
        return result

    def add_client(self, metadata: dict[str, Any]) -> None:
        """Add or replace a client (works before and after start)."""
        if self.running:
            self._admin("POST", "clients", metadata)
        else:
            self._extra_clients = [
                c for c in self._extra_clients if c["client_id"] != metadata["client_id"]
            ] + [copy.deepcopy(metadata)]

    def backchannel_logout(
        self, client_id: str, sub: str, sid: str | None = None, *, revoke: bool = False
    ) -> dict[str, Any]:
        """Make the IdP POST a real logout_token to the client's ``backchannel_logout_uri``.

        Without ``sid`` the sid of the user's current IdP session for that client is used (a
        random one if there is none). Returns ``{"delivered": bool, "sid", "uri", "status",
        "error"}``; ``delivered`` is False when the RP did not answer 200/204. ``revoke=True``
        also ends the user's IdP sessions/grants afterwards.
        """
        body: dict[str, Any] = {"client_id": client_id, "sub": sub, "revoke": revoke}
        if sid is not None:
            body["sid"] = sid
        result: dict[str, Any] = self._admin("POST", "backchannel-logout", body)
        return result

    # ---- browser ------------------------------------------------------------------------

    @staticmethod
    def new_browser() -> httpx.Client:
        """A cookie-keeping httpx client; reuse it across login() calls to reuse the session."""
        return new_browser()

    def login(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        client: httpx.Client | None = None,
    ) -> str:
        """Sign in at the IdP starting from an authorization URL.

        Returns the redirect Location pointing outside the IdP (the RP callback with
        ``code``, ``state``, ``iss`` -- or ``error``) WITHOUT requesting it. With a ``client``
        that already has an IdP session, no credentials are needed. Raises
        :class:`IdPLoginError` when the IdP refuses the login or shows an error page.
        """
        result = browse(
            url, idp_origin=self.base_url, username=username, password=password, client=client
        )
        if result.location is None:
            raise IdPError(f"login ended on IdP page {result.page!r} at {result.url}")
        return result.location

    def cancel(self, url: str, *, client: httpx.Client | None = None) -> str:
        """Start at an authorization URL and press Cancel on the IdP's login page; returns the
        redirect back to the RP (``error=access_denied``) without requesting it."""
        result = browse(url, idp_origin=self.base_url, cancel=True, client=client)
        if result.location is None:
            raise IdPError(f"cancel ended on IdP page {result.page!r} at {result.url}")
        return result.location

    def confirm_device(
        self,
        verification: str | tuple[str, str],
        username: str | None = None,
        password: str | None = None,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        """Complete the device flow's user side: enter/confirm the user code and sign in.

        ``verification`` is ``verification_uri_complete`` or ``(verification_uri, user_code)``.
        Returns when the IdP shows its success page.
        """
        if isinstance(verification, tuple):
            url, user_code = verification
        else:
            url, user_code = verification, None
        result = browse(
            url,
            idp_origin=self.base_url,
            username=username,
            password=password,
            user_code=user_code,
            client=client,
        )
        if result.page != "device-success":
            raise IdPError(f"device confirmation ended at {result.location or result.url}")

    def end_session(
        self, url: str, client: httpx.Client | None = None, *, logout: bool = True
    ) -> str:
        """Follow an RP-initiated logout URL and confirm the IdP's "sign out?" form.

        ``logout=True`` presses "Yes, sign me out" (ends the whole IdP session and sends
        back-channel logout tokens to every client of the session); ``False`` presses "No,
        stay signed in" (only the requesting client's grant ends). Returns the final location:
        the ``post_logout_redirect_uri`` (with ``state``) or the IdP's own success page URL.
        """
        result = browse(url, idp_origin=self.base_url, logout=logout, client=client)
        return result.location or result.url


# --------------------------------------------------------------------------------------------
# demo mode
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Gatehouse test IdP in the foreground.")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--issuer-path", default="")
    parser.add_argument(
        "--web-redirect",
        action="append",
        default=[],
        help="redirect URI for gatehouse-web (repeatable)",
    )
    parser.add_argument("--backchannel-logout-uri", default=None)
    parser.add_argument("--admin-token", default="demo-admin-token")
    args = parser.parse_args(argv)

    idp = OpenIDProvider(
        issuer_path=args.issuer_path,
        web_redirect_uris=args.web_redirect or ["http://127.0.0.1:8000/auth/oidc/callback"],
        backchannel_logout_uri=args.backchannel_logout_uri,
        port=args.port,
        host=args.host,
        admin_token=args.admin_token,
        start_timeout=30.0,
    )
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    idp.start()
    clients = idp.client_configs()
    print(f"Test IdP issuer:  {idp.issuer}")
    print(f"Discovery:        {idp.discovery_url}")
    print(f"Admin API:        {idp.admin_url}  (X-Admin-Token: {idp.admin_token})")
    for c in clients:
        secret = c.get("client_secret")
        print(
            f"Client {c['client_id']:<20} auth={c['token_endpoint_auth_method']:<20}"
            f" secret={secret or '-'}  redirect_uris={c['redirect_uris']}"
        )
    for u in idp.users:
        print(f"User   {u['username']:<10} password={u['password']:<18} sub={u['sub']}")
    print(f"Log:              {idp.log_path}")
    print("Ctrl-C to stop.", flush=True)
    try:
        while idp.running:
            time.sleep(0.5)
        print("the IdP exited:\n" + idp.log_text()[-4000:], file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        idp.stop()


if __name__ == "__main__":
    sys.exit(main())
