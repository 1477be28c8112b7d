"""PKCE (RFC 7636): the S256 challenge and the code verifier."""

from __future__ import annotations

import pytest

from gatehouse.oidc import (
    challenge_s256,
    generate_verifier,
)


def test_pkce_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert challenge_s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_verifier_length_and_alphabet() -> None:
    verifier = generate_verifier()
    assert 43 <= len(verifier) <= 128
    assert generate_verifier() != verifier
    with pytest.raises(ValueError):
        challenge_s256("short")
