"""The JWKS cache: lifetime, one refetch per cooldown on an unknown kid, never an empty set."""

from __future__ import annotations

import httpx
import pytest

from gatehouse.oidc import (
    IdPUnavailableError,
    JWKSCache,
    TokenValidationError,
)
from unit.oidc.oidc_testkit import ISSUER, FakeClock, FakeIdP, Keys, public_jwk


def test_jwks_empty_set_never_cached(keys: Keys, idp: FakeIdP) -> None:
    clock = FakeClock()
    idp.jwks["keys"] = []
    jwks = JWKSCache(idp.client(), f"{ISSUER}/jwks", clock=clock)
    with pytest.raises(IdPUnavailableError):
        jwks.get_key("rsa1", "RS256")
    idp.jwks["keys"] = [public_jwk(keys.rsa)]
    assert jwks.get_key("rsa1", "RS256").kid == "rsa1"  # fetched again at once: nothing cached
    assert idp.count("/jwks") == 2


def test_jwks_set_of_only_unusable_keys_is_not_cached(idp: FakeIdP) -> None:
    idp.jwks["keys"] = [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, {"kty": "XYZ"}]
    jwks = JWKSCache(idp.client(), f"{ISSUER}/jwks")
    with pytest.raises(IdPUnavailableError):
        jwks.get_key("h", "RS256")
    assert jwks.key_set is None


def test_jwks_failed_refresh_keeps_old_keys(keys: Keys, idp: FakeIdP) -> None:
    clock = FakeClock()
    jwks = JWKSCache(idp.client(), f"{ISSUER}/jwks", lifetime=100, clock=clock)
    assert jwks.get_key("rsa1", "RS256").kid == "rsa1"
    idp.routes["/jwks"] = lambda r: httpx.Response(500)
    clock.sleep(101)
    assert jwks.get_key("rsa1", "RS256").kid == "rsa1"
    assert idp.count("/jwks") == 2
    idp.routes["/jwks"] = lambda r: httpx.Response(200, json={"keys": []})
    clock.sleep(31)
    assert jwks.get_key("rsa1", "RS256").kid == "rsa1"  # an empty answer replaces nothing


def test_jwks_lifetime_triggers_refetch(keys: Keys, idp: FakeIdP) -> None:
    clock = FakeClock()
    jwks = JWKSCache(idp.client(), f"{ISSUER}/jwks", lifetime=100, clock=clock)
    jwks.get_key("rsa1", "RS256")
    clock.sleep(50)
    jwks.get_key("rsa1", "RS256")
    assert idp.count("/jwks") == 1
    clock.sleep(51)
    jwks.get_key("rsa1", "RS256")
    assert idp.count("/jwks") == 2


def test_jwks_unknown_kid_cooldown(keys: Keys, idp: FakeIdP) -> None:
    clock = FakeClock()
    jwks = JWKSCache(idp.client(), f"{ISSUER}/jwks", refetch_cooldown=30, clock=clock)
    jwks.get_key("rsa1", "RS256")
    for _ in range(5):
        with pytest.raises(TokenValidationError, match="unknown_kid"):
            jwks.get_key("nope", "RS256")
    assert idp.count("/jwks") == 1
    clock.sleep(30)
    with pytest.raises(TokenValidationError, match="unknown_kid"):
        jwks.get_key("nope", "RS256")
    assert idp.count("/jwks") == 2


def test_jwks_use_enc_key_ignored(keys: Keys, idp: FakeIdP) -> None:
    idp.jwks["keys"] = [public_jwk(keys.rsa, use="enc"), public_jwk(keys.ec)]
    jwks = JWKSCache(idp.client(), f"{ISSUER}/jwks")
    with pytest.raises(TokenValidationError, match="unknown_kid"):
        jwks.get_key("rsa1", "RS256")


def test_jwks_requests_carry_a_timeout(keys: Keys, idp: FakeIdP) -> None:
    JWKSCache(idp.client(), f"{ISSUER}/jwks").get_key("rsa1", "RS256")
    timeout = idp.requests[0].extensions["timeout"]
    assert all(value is not None for value in timeout.values())
