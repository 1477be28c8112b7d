"""How a browser sign-in ends when it does not succeed: a timeout, and an IdP error."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gatehouse.client import LoginFailed, TokenCache, login_browser


def test_browser_login_stops_on_timeout_and_on_an_idp_error(
    server: Any, tools_idp: Any, tmp_path: Any
) -> None:
    cache = TokenCache(tmp_path, store="file", notify=lambda _m: None)
    with pytest.raises(LoginFailed) as timed_out:
        login_browser(server.url, cache=cache, open_browser=lambda _url: True, timeout=0.5)
    assert timed_out.value.code == "login_timeout"
    assert f"run `gatehouse login {server.url}` to try again" in timed_out.value.message

    def refusing_idp(url: str) -> bool:
        query = parse_qs(urlsplit(url).query)
        answer = {
            "error": "access_denied",
            "error_description": "The user said no",
            "state": query["state"][0],
            "iss": tools_idp.issuer,  # RFC 9207: this IdP always sends it
        }
        callback = f"{query['redirect_uri'][0]}?{urlencode(answer)}"
        assert "closed" not in httpx.get(callback, trust_env=False).text
        return True

    with pytest.raises(LoginFailed) as refused:
        login_browser(server.url, cache=cache, open_browser=refusing_idp, timeout=10)
    assert refused.value.code == "access_denied"
    assert "The user said no" in refused.value.message
    assert cache.sessions() == []
