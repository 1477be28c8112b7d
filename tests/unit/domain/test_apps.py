"""Registered app origins and the return_to judge (pure domain, no web app)."""

from __future__ import annotations

import pytest

from gatehouse.domain.apps import (
    InvalidOrigin,
    InvalidReturnTo,
    Origin,
    check_return_to,
    own_origin,
    parse_origin,
    parse_origins,
    unified_login_url,
)

REGISTERED = parse_origins(
    [
        "https://app.example.com",
        "https://tools.example.com/grafana/",
        "https://ports.example.com:8443",
        "http://127.0.0.1:9000",
    ],
    allow_insecure_http=True,
)
OWN = own_origin("https://gatehouse.example.com")

HOSTILE = [
    "//evil.example",
    "///evil.example",
    "\\\\evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "https://app.example.com@evil.example",
    "https://app.example.com:443@evil.example/",
    "https://user:pass@app.example.com/",
    "HTTPS://app.example.com/",
    "Https://app.example.com/",
    " https://app.example.com/",
    "https://app.example.com/ ",
    "\thttps://app.example.com/",
    "https://app.example.com\t.evil.example/",
    "https://app.example.com/\n",
    "https://app.example.com/\r\nSet-Cookie:x=1",
    "/\x00//evil.example",
    "/%00//evil.example",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "%252F%252Fevil.example",
    "/%5Cevil.example",
    "/%255Cevil.example",
    "https%3A%2F%2Fevil.example",
    "https%253A%252F%252Fevil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    "https://\u0430pp.example.com/",  # Cyrillic small a (U+0430)
    "https://xn--pp-6kc.example.com/",  # the same look-alike, as punycode
    "https://app.example.com:8443/",
    "http://app.example.com/",
    "ftp://app.example.com/",
    "https://app.example.com./",
    "https://app.example.com\\@evil.example/",
    "https://evil.example\\.app.example.com/",
    "https:evil.example",
    "https:/evil.example",
    "https:///evil.example",
    "https://evil.example/https://app.example.com/",
    "https://app.example.com.evil.example/",
    "https://evil.example/?next=https://app.example.com",
    "https://APP.example.com/",
    "https://app.example.com%2F@evil.example/",
    "https://app.example.com%40evil.example/",
    "https://app.example.com:99999/",
    "https://app.example.com:0/",
    "https://app.example.com:/",
    "https://app\uff0eexample.com/",  # fullwidth full stop
    "https://tools.example.com/",  # registered only under /grafana/
    "https://tools.example.com/grafana-evil/",
    "https://tools.example.com/grafana/../admin",
    "https://tools.example.com/grafana/%2e%2e/admin",
    "https://127.0.0.1:9001/",
    "https://127.0.0.1:9000/",  # registered as http only
    "https://2130706433/",
    "",
    "evil.example",
    "/users\x7f",
    "/" + "a" * 3000,
]

LEGITIMATE = [
    "https://app.example.com",
    "https://app.example.com/",
    "https://app.example.com/dashboard?tab=1&next=%2Fsettings",
    "https://app.example.com/a/b#section",
    "https://app.example.com:443/explicit-default-port",
    "https://ports.example.com:8443/x",
    "https://tools.example.com/grafana",
    "https://tools.example.com/grafana/d/abc?orgId=1",
    "http://127.0.0.1:9000/callback",
    "https://gatehouse.example.com/users",
    "/",
    "/users",
    "/users?q=alice&sort=-email",
    "/account/password",
]


def test_hostile_table_is_large_enough() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize("value", HOSTILE)
def test_check_return_to_refuses_hostile_value(value: str) -> None:
    with pytest.raises(InvalidReturnTo) as info:
        check_return_to(value, REGISTERED, OWN)
    assert info.value.code == "invalid_return_to"
    assert info.value.status == 400


@pytest.mark.parametrize("value", LEGITIMATE)
def test_check_return_to_accepts_registered_origin_or_local_path(value: str) -> None:
    assert check_return_to(value, REGISTERED, OWN) == value


def test_check_return_to_without_registry_accepts_only_local_paths() -> None:
    assert check_return_to("/users", ()) == "/users"
    with pytest.raises(InvalidReturnTo):
        check_return_to("https://app.example.com/", ())


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("https://app.example.com/", "https://app.example.com"),
        ("HTTPS://App.Example.COM", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://tools.example.com/grafana/", "https://tools.example.com/grafana/"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://localhost:9000", "http://localhost:9000"),
    ],
)
def test_parse_origin_stores_canonical_form(entry: str, canonical: str) -> None:
    assert str(parse_origin(entry, allow_insecure_http=True)) == canonical


@pytest.mark.parametrize(
    "entry",
    [
        "http://app.example.com",  # http off loopback
        "https://*.example.com",
        "https://user@app.example.com",
        "https://app.example.com?x=1",
        "https://app.example.com#f",
        "https://app.example.com.",
        "https://app.example.com:0",
        "https://app.example.com:70000",
        "https://app%2eexample.com",
        " https://app.example.com",
        "https://app.example.com/a/../b",
        "https://app.example.com//x",
        "https://app.example.com\\x",
        "javascript://app.example.com",
        "app.example.com",
        "https://",
        "https://-bad-.example.com",
        "https://xn--zz.example.com",
        "https://1.2.3",
        "",
        42,
    ],
)
def test_parse_origin_refuses_anything_but_an_exact_origin(entry: object) -> None:
    with pytest.raises(InvalidOrigin):
        parse_origin(entry, allow_insecure_http=True)


def test_parse_origin_refuses_loopback_http_unless_insecure_http_is_allowed() -> None:
    with pytest.raises(InvalidOrigin):
        parse_origin("http://127.0.0.1:9000", allow_insecure_http=False)


def test_parse_origins_deduplicates_and_limits_the_list() -> None:
    same = parse_origins(
        ["https://app.example.com", "https://APP.example.com:443/"], allow_insecure_http=False
    )
    assert same == [Origin("https", "app.example.com", 443)]
    with pytest.raises(InvalidOrigin):
        parse_origins([], allow_insecure_http=False)
    with pytest.raises(InvalidOrigin):
        parse_origins("https://app.example.com", allow_insecure_http=False)


def test_unified_login_url_runs_idp_flow_only_while_oidc_is_active() -> None:
    target = "https://app.example.com/a?b=c&d=e"
    assert unified_login_url("https://gh.example", target, oidc_active=True) == (
        "https://gh.example/auth/oidc/start?return_to=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3Dc%26d%3De"
    )
    assert unified_login_url("https://gh.example", "/users", oidc_active=False) == (
        "https://gh.example/login?return_to=%2Fusers"
    )
