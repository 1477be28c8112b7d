"""JWS algorithms the relying party accepts, and what each needs of a key (private).

Only asymmetric algorithms: ``none`` and every ``HS*`` are refused always, whatever the
provider advertises — an HMAC ID token is keyed with the client secret, which would let anyone
holding the secret mint identities, and mixing them up with public keys is the classic
algorithm-confusion attack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

#: asymmetric JWS algorithms that may sign ID tokens, logout tokens and UserInfo responses
ASYMMETRIC_ALGS: frozenset[str] = frozenset(
    {
        "RS256", "RS384", "RS512",
        "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512",
        "EdDSA", "Ed25519",
    }
)  # fmt: skip

#: OpenID Connect Core 15.1: "RS256" is the default when the provider advertises nothing
DEFAULT_ID_TOKEN_ALGS: tuple[str, ...] = ("RS256",)

#: algorithm -> (JWK "kty", allowed "crv" values or None)
ALG_KEY_REQUIREMENTS: dict[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "Ed25519": ("OKP", frozenset({"Ed25519"})),
}


def allowed_algorithms(
    advertised: Iterable[str] | None, restrict_to: Iterable[str] | None = None
) -> frozenset[str]:
    """The algorithms to accept: advertised (default RS256) ∩ asymmetric (∩ ``restrict_to``)."""
    accepted = frozenset(advertised if advertised is not None else DEFAULT_ID_TOKEN_ALGS)
    accepted &= ASYMMETRIC_ALGS
    if restrict_to is not None:
        accepted &= frozenset(restrict_to)
    return accepted


def _sha(name: str) -> Callable[[bytes], bytes]:
    return lambda data: hashlib.new(name, data).digest()


def _shake256_114(data: bytes) -> bytes:
    return hashlib.shake_256(data).digest(114)


def token_hash_function(alg: str, crv: str | None) -> Callable[[bytes], bytes]:
    """The hash of OpenID Connect Core 3.1.3.6 (``at_hash``) for a JWS algorithm.

    "the hash algorithm used is the hash algorithm used in the alg Header Parameter of the ID
    Token's JOSE Header. For instance, if the alg is RS256, hash the access_token value with
    SHA-256". For EdDSA the hash follows the curve: SHA-512 for Ed25519, SHAKE256 (114 bytes)
    for Ed448.
    """
    if alg in ("EdDSA", "Ed25519"):
        if crv == "Ed448":
            return _shake256_114
        return _sha("sha512")
    size = alg[2:]
    if size not in ("256", "384", "512"):
        raise ValueError(f"no token hash for {alg}")
    return _sha("sha" + size)
