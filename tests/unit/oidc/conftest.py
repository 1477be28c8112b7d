from __future__ import annotations

import pytest

from gatehouse.oidc import JWKSCache, ProviderMetadata
from unit.oidc.oidc_testkit import FakeIdP, Keys, make_keys, make_metadata, public_jwk


@pytest.fixture(scope="session")
def keys() -> Keys:
    return make_keys()


@pytest.fixture
def idp(keys: Keys) -> FakeIdP:
    return FakeIdP(jwks={"keys": [public_jwk(keys.rsa), public_jwk(keys.ec), public_jwk(keys.okp)]})


@pytest.fixture
def metadata() -> ProviderMetadata:
    return make_metadata()


@pytest.fixture
def jwks(idp: FakeIdP, metadata: ProviderMetadata) -> JWKSCache:
    return JWKSCache(idp.client(), metadata.jwks_uri)
