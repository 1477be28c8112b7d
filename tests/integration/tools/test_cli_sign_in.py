"""The `gatehouse` command end to end: a live Gatehouse, the real test IdP, the scripted
browser (``$BROWSER`` = tests/idp/browser.py) and separate CLI processes sharing one cache."""

from __future__ import annotations

import json
import re
import stat
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from gatehouse.client import GatehouseAuth, TokenCache, login_browser
from gatehouse.client._cache import updated
from helpers import ADMIN_PASSWORD
from idp.fixture import OpenIDProvider

SESSION_ENDED = "Your session for {url} has ended; run `gatehouse login {url}`."


def stored(cli: Any, url: str) -> Any:
    session = TokenCache(cli.config_dir, store="file").load(url)
    assert session is not None
    return session


def expire_locally(cli: Any, url: str) -> None:
    """Make the cached Gatehouse token look expired (as if ten minutes had passed)."""
    cache = TokenCache(cli.config_dir, store="file")
    with cache.lock(url):
        cache.save(updated(stored(cli, url), access_expires_at=time.time() - 1))


def login(cli: Any, url: str, provider: OpenIDProvider) -> None:
    """Sign alice in with the SDK, in-process (the CLI's own login has its tests above)."""

    def scripted_browser(authorization_url: str) -> bool:
        location = provider.login(authorization_url, "alice", "alice-password")
        assert httpx.get(location, trust_env=False).status_code == 200
        return True

    session = login_browser(
        url, cache=TokenCache(cli.config_dir, store="file"), open_browser=scripted_browser
    )
    assert session.username == "alice"


def me(url: str, token: str) -> httpx.Response:
    return httpx.get(
        f"{url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, trust_env=False
    )


def test_login_through_the_browser_then_whoami_status_token_and_logout(
    server: Any, cli: Any
) -> None:
    url = server.url
    result = cli.run("login", url, "--json", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["user"] == "alice"
    assert "No system keyring is available" in result.stderr  # said once, plainly

    whoami = cli.run("whoami", "--json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["username"] == "alice"

    status = cli.run("auth", "status")
    assert status.returncode == 0
    assert url in status.stdout and "alice" in status.stdout
    assert "No system keyring" not in status.stderr + whoami.stderr

    token = cli.run("auth", "token", url)
    assert token.returncode == 0
    bare = token.stdout.strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", bare)
    assert me(url, bare).status_code == 200
    as_json = json.loads(cli.run("auth", "token", "--json").stdout)
    assert as_json["access_token"] == bare and as_json["expires_at"]

    logout = cli.run("auth", "logout", url)
    assert logout.returncode == 0, logout.stderr
    assert cli.run("auth", "status").returncode == 4
    after = cli.run("auth", "token", url)
    assert after.returncode == 4
    assert f"gatehouse login {url}" in after.stderr


def test_login_always_shows_the_link_and_never_wraps_a_sentence_in_a_narrow_terminal(
    server: Any, cli: Any, tools_idp: OpenIDProvider, tmp_path: Any
) -> None:
    """$BROWSER "succeeds" but opens nothing: the link is on screen all the same, and a
    40-column terminal does not cut "token valid until … UTC" in two."""
    silent = tmp_path / "browser-that-opens-nothing"
    silent.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    silent.chmod(silent.stat().st_mode | stat.S_IXUSR)
    process = cli.start("login", server.url, "--timeout", "30", BROWSER=str(silent), COLUMNS="40")
    assert process.stderr is not None
    lines: list[str] = []
    link = None
    deadline = time.monotonic() + 20
    while link is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        link = line.strip() if line.startswith("    http") else None
    while lines and "Waiting" not in lines[-1] and time.monotonic() < deadline:
        lines.append(process.stderr.readline())  # said next, while nothing moves on screen
    shown = "".join(lines)
    assert link, shown
    assert "Opening your browser… if nothing opens, visit:\n" in shown
    assert "Waiting for you to sign in in the browser (up to 0.5 min; Ctrl-C to cancel)…" in shown
    location = tools_idp.login(link, "alice", "alice-password")  # the person opens it by hand
    assert httpx.get(location, trust_env=False).status_code == 200
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, shown + err
    done = next(line for line in err.splitlines() if "Signed in to" in line)
    assert re.search(r"as alice \(token valid until \S+ \S+ \S+; renews itself\)\.$", done), err


def test_cache_files_are_private(server: Any, cli: Any, tools_idp: OpenIDProvider) -> None:
    login(cli, server.url, tools_idp)
    session_file = TokenCache(cli.config_dir, store="file").path_for(server.url)
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(session_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(session_file.with_suffix(".lock").stat().st_mode) == 0o600


def test_device_flow_end_to_end(server: Any, cli: Any, tools_idp: OpenIDProvider) -> None:
    process = cli.start("login", server.url, "--device")
    assert process.stderr is not None
    lines: list[str] = []
    code = None
    deadline = time.monotonic() + 20
    while code is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"enter the code\s+(\S+)", line)
        code = found.group(1) if found else None
    assert code, "".join(lines)
    uri = re.search(r"open (\S+) on any device", "".join(lines))
    assert uri, "".join(lines)
    tools_idp.confirm_device((uri.group(1), code), "alice", "alice-password")
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, "".join(lines) + err
    assert "as alice" in err
    assert cli.run("whoami").returncode == 0


def test_silent_refresh_after_the_gatehouse_token_expires(
    server: Any, cli: Any, tools_idp: OpenIDProvider
) -> None:
    from datetime import timedelta

    server.runtime.tokens.lifetime = timedelta(seconds=2)
    login(cli, server.url, tools_idp)
    first = stored(cli, server.url)
    time.sleep(2.1)
    assert me(server.url, first.access_token).status_code == 401  # really expired at the server
    result = cli.run("auth", "token", server.url)
    assert result.returncode == 0, result.stderr
    renewed = stored(cli, server.url)
    assert result.stdout.strip() == renewed.access_token != first.access_token
    assert renewed.refresh_token != first.refresh_token  # rotated, and the new one kept
    assert me(server.url, renewed.access_token).status_code == 200


def test_refused_refresh_ends_the_session_with_the_clear_message(
    server: Any, cli: Any, tools_idp: OpenIDProvider
) -> None:
    login(cli, server.url, tools_idp)
    expire_locally(cli, server.url)
    tools_idp.disable_user("alice-sub")
    try:
        result = cli.run("auth", "token", server.url)
    finally:
        tools_idp.enable_user("alice-sub")
    assert result.returncode == 4
    assert SESSION_ENDED.format(url=server.url) in " ".join(result.stderr.split())
    assert result.stdout == ""
    assert cli.run("auth", "status").returncode == 4


def test_two_concurrent_commands_share_one_cache_and_spend_the_refresh_token_once(
    server: Any, cli: Any, tools_idp: OpenIDProvider
) -> None:
    login(cli, server.url, tools_idp)
    expire_locally(cli, server.url)
    token_path = urlsplit(tools_idp.endpoint("token")).path

    def token_posts() -> int:
        return tools_idp.log_text().count(f"POST {token_path} -> ")

    before = token_posts()
    processes = [cli.start("auth", "token", server.url) for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [o[1] for o in outputs]
    tokens = {o[0].strip() for o in outputs}
    assert len(tokens) == 1  # the others waited for the lock and took the renewed token
    assert token_posts() - before == 1  # one refresh grant for three commands
    # the cache is intact and holds the live refresh token: the next renewal works too
    expire_locally(cli, server.url)
    again = cli.run("auth", "token", server.url)
    assert again.returncode == 0, again.stderr
    assert me(server.url, again.stdout.strip()).status_code == 200


def test_sdk_retries_once_after_a_401(server: Any, cli: Any, tools_idp: OpenIDProvider) -> None:
    login(cli, server.url, tools_idp)
    cache = TokenCache(cli.config_dir, store="file")
    with cache.lock(server.url):  # a token the server no longer accepts, though not expired
        cache.save(updated(stored(cli, server.url), access_token="not.a-valid.token"))
    statuses: list[int] = []
    auth = GatehouseAuth(server.url, interactive=False, cache=cache)
    with httpx.Client(
        base_url=server.url,
        auth=auth,
        trust_env=False,
        event_hooks={"response": [lambda r: statuses.append(r.status_code)]},
    ) as api:
        response = api.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert statuses == [401, 200]


def test_sdk_sends_the_token_only_to_its_server(
    server: Any, cli: Any, tools_idp: OpenIDProvider
) -> None:
    login(cli, server.url, tools_idp)
    seen: list[str | None] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200)

    auth = GatehouseAuth(server.url, interactive=False, cache=TokenCache(cli.config_dir))
    with httpx.Client(auth=auth, transport=httpx.MockTransport(record)) as api:
        api.get("https://elsewhere.example/steal")
    assert seen == [None]


def test_login_of_an_unknown_user_is_refused_with_the_servers_reason(
    server: Any, cli: Any, tools_idp: OpenIDProvider
) -> None:
    result = cli.run(
        "login",
        server.url,
        "--timeout",
        "30",
        TEST_IDP_USERNAME="bob",
        TEST_IDP_PASSWORD="bob-password",
    )
    assert result.returncode == 1
    assert "Error:" in result.stderr and "bob" not in result.stdout
    assert cli.run("auth", "status").returncode == 4


def test_local_admin_signs_in_with_a_password_from_stdin(
    server: Any, cli: Any, tools_idp: OpenIDProvider
) -> None:
    result = cli.run(
        "login",
        server.url,
        "--local",
        "--username",
        "root",
        "--password-stdin",
        input=ADMIN_PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert ADMIN_PASSWORD not in result.stdout + result.stderr
    whoami = json.loads(cli.run("whoami", "--json").stdout)
    assert whoami["username"] == "root" and whoami["local_admin"] is True


def test_threads_in_one_process_share_the_renewal(
    server: Any, cli: Any, tools_idp: OpenIDProvider
) -> None:
    login(cli, server.url, tools_idp)
    expire_locally(cli, server.url)
    auth = GatehouseAuth(server.url, interactive=False, cache=TokenCache(cli.config_dir))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(auth.token())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 4
