"""Discovery (OIDC Discovery 1.0): the exact issuer, the metadata and its cache."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gatehouse.oidc import (
    ConfigurationError,
    DiscoveryError,
    IdPUnavailableError,
    MetadataCache,
    ProviderMetadata,
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


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"token_endpoint": ""}, "missing_metadata_field", "token_endpoint"),
        ({"jwks_uri": 5}, "missing_metadata_field", "jwks_uri"),
        ({"userinfo_endpoint": ""}, "invalid_metadata_field", "userinfo_endpoint"),
        ({"scopes_supported": "openid"}, "invalid_metadata_field", "scopes_supported"),
        ({"grant_types_supported": ["x", 1]}, "invalid_metadata_field", "grant_types_supported"),
        ({"backchannel_logout_supported": "true"}, "invalid_metadata_field", "backchannel"),
        ({"backchannel_logout_supported": 1}, "invalid_metadata_field", "backchannel"),
        ({"end_session_endpoint": "https://idp.example.com/x#f"}, "invalid_url", "end_session"),
        # presence and types are reported before URLs, whatever the order of the fields
        ({"issuer": "http://idp.example.com", "jwks_uri": None}, "missing_metadata_field", "jwks"),
    ],
)
def test_metadata_fields_are_checked_with_a_code_naming_the_field(
    changes: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(DiscoveryError) as info:
        ProviderMetadata.from_dict(metadata_doc(**changes), allow_insecure_http=False)
    assert info.value.error == code and field in info.value.description


def test_metadata_keeps_the_whole_document_and_is_immutable() -> None:
    doc = metadata_doc(raw="not ours", userinfo_signing_alg_values_supported=["RS256"])
    metadata = ProviderMetadata.from_dict(doc, allow_insecure_http=False)
    assert metadata.raw == doc and metadata.userinfo_endpoint == f"{ISSUER}/userinfo"
    assert metadata.id_token_signing_alg_values_supported == tuple(
        doc["id_token_signing_alg_values_supported"]
    )
    with pytest.raises(ValueError, match="frozen"):
        metadata.issuer = "https://other.example.com"  # type: ignore[misc]


def test_loopback_http_endpoints_need_the_insecure_policy_and_no_context_refuses_them() -> None:
    loopback = "http://127.0.0.1:9000"
    doc = metadata_doc(loopback)
    assert ProviderMetadata.from_dict(doc, allow_insecure_http=True).issuer == loopback
    with pytest.raises(DiscoveryError, match="insecure_url"):
        ProviderMetadata.from_dict(doc, allow_insecure_http=False)
    with pytest.raises(ValueError, match="must use https"):
        ProviderMetadata.model_validate(doc)


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
