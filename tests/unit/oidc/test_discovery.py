"""Discovery (OIDC Discovery 1.0): the exact issuer, the metadata and its cache."""

from __future__ import annotations

import httpx
import pytest

from gatehouse.oidc import (
    ConfigurationError,
    DiscoveryError,
    IdPUnavailableError,
    MetadataCache,
    check_issuer_url,
    fetch_metadata,
)
from unit.oidc.oidc_testkit import ISSUER, FakeClock, FakeIdP, metadata_doc


def test_discovery_fetches_and_types_metadata(idp: FakeIdP) -> None:
    idp.doc["authorization_response_iss_parameter_supported"] = True
    metadata = fetch_metadata(idp.client(), ISSUER, allow_insecure_http=False)
    assert metadata.issuer == ISSUER
    assert metadata.token_endpoint == f"{ISSUER}/token"
    assert metadata.code_challenge_methods_supported == ("S256",)
    assert metadata.authorization_response_iss_parameter_supported is True
    assert metadata.raw["subject_types_supported"] == ["public"]
    assert idp.requests[0].url == f"{ISSUER}/.well-known/openid-configuration"


def test_discovery_rejected_when_issuer_trailing_slash_differs(idp: FakeIdP) -> None:
    with pytest.raises(DiscoveryError) as info:
        fetch_metadata(idp.client(), ISSUER + "/", allow_insecure_http=False)
    assert info.value.error == "issuer_mismatch"
    assert idp.requests[0].url == f"{ISSUER}/.well-known/openid-configuration"


def test_discovery_issuer_with_path() -> None:
    issuer = "https://login.example.com/realms/acme"
    idp = FakeIdP(doc=metadata_doc(issuer))
    idp.routes["/realms/acme/.well-known/openid-configuration"] = lambda r: httpx.Response(
        200, json=idp.doc
    )
    metadata = fetch_metadata(idp.client(), issuer, allow_insecure_http=False)
    assert metadata.issuer == issuer
    assert idp.requests[0].url.path == "/realms/acme/.well-known/openid-configuration"


def test_discovery_rejected_when_http_issuer() -> None:
    with pytest.raises(ConfigurationError, match="insecure_url"):
        check_issuer_url("http://idp.example.com", allow_insecure_http=False)
    with pytest.raises(ConfigurationError, match="insecure_url"):
        check_issuer_url("http://idp.example.com", allow_insecure_http=True)  # not loopback
    with pytest.raises(ConfigurationError, match="insecure_url"):
        check_issuer_url("http://127.0.0.1:8080", allow_insecure_http=False)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:9000/x", "http://localhost"]
)
def test_discovery_http_issuer_accepted_on_loopback_with_allow_insecure(url: str) -> None:
    check_issuer_url(url, allow_insecure_http=True)


@pytest.mark.parametrize(
    "url", ["https://idp.example.com?x=1", "https://idp.example.com#f", "ftp://idp", "https://"]
)
def test_discovery_rejected_when_issuer_has_query_fragment_or_bad_scheme(url: str) -> None:
    with pytest.raises(ConfigurationError):
        check_issuer_url(url, allow_insecure_http=False)


def test_discovery_rejected_when_endpoint_is_http(idp: FakeIdP) -> None:
    idp.doc["token_endpoint"] = "http://idp.example.com/token"
    with pytest.raises(DiscoveryError, match="insecure_url"):
        fetch_metadata(idp.client(), ISSUER, allow_insecure_http=False)


def test_discovery_rejected_when_required_field_missing(idp: FakeIdP) -> None:
    del idp.doc["jwks_uri"]
    with pytest.raises(DiscoveryError, match="missing_metadata_field"):
        fetch_metadata(idp.client(), ISSUER, allow_insecure_http=False)


def test_discovery_5xx_is_idp_unavailable(idp: FakeIdP) -> None:
    idp.routes["/.well-known/openid-configuration"] = lambda r: httpx.Response(502)
    with pytest.raises(IdPUnavailableError):
        fetch_metadata(idp.client(), ISSUER, allow_insecure_http=False)


def test_discovery_network_error_is_idp_unavailable() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timeout", request=request)

    client = httpx.Client(transport=httpx.MockTransport(fail))
    with pytest.raises(IdPUnavailableError):
        fetch_metadata(client, ISSUER, allow_insecure_http=False)


def test_discovery_404_or_not_json_is_discovery_error(idp: FakeIdP) -> None:
    idp.routes["/.well-known/openid-configuration"] = lambda r: httpx.Response(200, text="<html>")
    with pytest.raises(DiscoveryError, match="discovery_failed"):
        fetch_metadata(idp.client(), ISSUER, allow_insecure_http=False)
    idp.routes["/.well-known/openid-configuration"] = lambda r: httpx.Response(404)
    with pytest.raises(DiscoveryError, match="discovery_failed"):
        fetch_metadata(idp.client(), ISSUER, allow_insecure_http=False)


def test_metadata_cache_keeps_last_good_metadata_when_refresh_fails(idp: FakeIdP) -> None:
    clock = FakeClock()
    cache = MetadataCache(idp.client(), ISSUER, allow_insecure_http=False, ttl=3600, clock=clock)
    first = cache.get()
    assert cache.get() is first and idp.count("/.well-known/openid-configuration") == 1
    idp.routes["/.well-known/openid-configuration"] = lambda r: httpx.Response(503)
    clock.sleep(3601)
    assert cache.get() is first
    assert idp.count("/.well-known/openid-configuration") == 2
    assert cache.get() is first  # retry waits
    assert idp.count("/.well-known/openid-configuration") == 2


def test_metadata_cache_raises_without_any_good_copy(idp: FakeIdP) -> None:
    idp.routes["/.well-known/openid-configuration"] = lambda r: httpx.Response(503)
    with pytest.raises(IdPUnavailableError):
        MetadataCache(idp.client(), ISSUER, allow_insecure_http=False).get()
