"""ID token validation, OpenID Connect Core 1.0 section 3.1.3.7, step by step.

The signature (steps 6-8) is verified first, before any claim is looked at: a claim of an
unverified token is whatever an attacker wrote. Then each rule of :data:`ID_TOKEN_RULES` runs in
the order of the specification, each a small function quoting the text it implements, each
failing with its own error code. Finally joserfc's claims registry re-checks the registered
claims (essential ``iss``/``sub``/``aud``/``exp``/``iat``, issuer and audience values, ``nbf``,
leeway) as a fail-closed second opinion.

Only a :data:`VerifiedIDTokenClaims` comes out: a function that needs verified claims says so
in its signature.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NewType

from joserfc.errors import ClaimError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import Key
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from ._algs import allowed_algorithms, token_hash_function
from ._jws import verify_signed_jwt
from .discovery import ProviderMetadata
from .errors import ConfigurationError, TokenValidationError
from .jwks import JWKSCache

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "ID_TOKEN_RULES",
    "IDTokenValidator",
    "VerifiedIDTokenClaims",
    "validate_id_token",
    "validate_refreshed_id_token",
]

#: claims of an ID token whose signature and every rule of OIDC Core 3.1.3.7 passed
VerifiedIDTokenClaims = NewType("VerifiedIDTokenClaims", dict[str, Any])

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

#: largest clock-skew allowance accepted (a larger one is a configuration mistake)
MAX_LEEWAY_SECONDS = 600


@dataclass(frozen=True, slots=True)
class _Context:
    """Everything a rule may look at."""

    claims: Mapping[str, Any]
    header: Mapping[str, Any]
    alg: str
    key: Key
    issuer: str
    client_id: str
    trusted_audiences: frozenset[str]
    now: float
    leeway: int
    nonce: str | None
    access_token: str | None
    max_age_seconds: int | None
    max_iat_age_seconds: int | None


def _fail(error: str, description: str) -> TokenValidationError:
    return TokenValidationError(error, description)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def audiences(claims: Mapping[str, Any]) -> list[str]:
    """The ``aud`` claim as a list (a single string is one audience)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return list(aud)
    if aud is None:
        raise _fail("missing_claim", "The token has no aud claim.")
    raise _fail("invalid_claim", "The token's aud claim is not a string or a list of strings.")


# -- the rules, in the order of OIDC Core 3.1.3.7 ----------------------------------------------


def validate_token_type(ctx: _Context) -> None:
    """Refuse a logout token presented as an ID token (cross-JWT confusion).

    Back-Channel Logout 1.0, 2.4: "the Logout Token ... is distinct from an ID Token" and
    "explicit typing [typ: logout+jwt] ... prevents ... Logout Tokens ... being confused with
    other kinds of JWTs".
    """
    typ = ctx.header.get("typ")
    if isinstance(typ, str) and typ.lower().removeprefix("application/") == "logout+jwt":
        raise _fail("wrong_token_type", "A logout token was presented as an ID token.")
    events = ctx.claims.get("events")
    if isinstance(events, dict) and BACKCHANNEL_LOGOUT_EVENT in events:
        raise _fail("wrong_token_type", "A logout token was presented as an ID token.")


def validate_iss(ctx: _Context) -> None:
    """Step 2: "The Issuer Identifier for the OpenID Provider (which is typically obtained
    during Discovery) MUST exactly match the value of the iss (issuer) Claim."
    """
    iss = ctx.claims.get("iss")
    if iss is None:
        raise _fail("missing_claim", "The token has no iss claim.")
    if not isinstance(iss, str) or not hmac.compare_digest(iss.encode(), ctx.issuer.encode()):
        raise _fail("issuer_mismatch", "The token's iss is not the configured issuer.")


def validate_aud(ctx: _Context) -> None:
    """Step 3: "The Client MUST validate that the aud (audience) Claim contains its client_id
    value registered at the Issuer identified by the iss (issuer) Claim as an audience. The aud
    (audience) Claim MAY contain an array with more than one element. The ID Token MUST be
    rejected if the ID Token does not list the Client as a valid audience, or if it contains
    additional audiences not trusted by the Client."
    """
    aud = audiences(ctx.claims)
    if ctx.client_id not in aud:
        raise _fail("audience_mismatch", "The token's aud does not contain our client_id.")
    untrusted = [a for a in aud if a != ctx.client_id and a not in ctx.trusted_audiences]
    if untrusted:
        raise _fail("untrusted_audience", "The token's aud contains an untrusted audience.")


def validate_azp(ctx: _Context) -> None:
    """Steps 4-5: "If the implementation is using extensions (which are beyond the scope of
    this specification) that result in the azp (authorized party) Claim being present, it
    SHOULD validate the azp value as specified by those extensions." — OIDC Core 2 (azp):
    "It MUST contain the OAuth 2.0 Client ID of this party." Errata: azp is required when the
    ID Token has several audiences; if present, it must be our client_id.
    """
    azp = ctx.claims.get("azp")
    if azp is None:
        if len(audiences(ctx.claims)) > 1:
            raise _fail("azp_missing", "The token has several audiences but no azp claim.")
        return
    if not isinstance(azp, str) or azp != ctx.client_id:
        raise _fail("azp_mismatch", "The token's azp is not our client_id.")


def validate_exp(ctx: _Context) -> None:
    """Step 9: "The current time MUST be before the time represented by the exp Claim
    (possibly allowing for some small leeway to account for clock skew)."
    """
    exp = ctx.claims.get("exp")
    if exp is None:
        raise _fail("missing_claim", "The token has no exp claim.")
    if not _is_number(exp):
        raise _fail("invalid_claim", "The token's exp is not a number.")
    if ctx.now >= exp + ctx.leeway:
        raise _fail("token_expired", "The token has expired.")


def validate_iat(ctx: _Context) -> None:
    """Step 10: "The iat Claim can be used to reject tokens that were issued too far away from
    the current time, limiting the amount of time that nonces need to be stored to prevent
    attacks. The acceptable range is Client specific."

    iat is required (OIDC Core 2), may not lie in the future beyond the leeway, and — when
    ``max_iat_age_seconds`` is given — may not be older than that (plus the leeway).
    """
    iat = ctx.claims.get("iat")
    if iat is None:
        raise _fail("missing_claim", "The token has no iat claim.")
    if not _is_number(iat):
        raise _fail("invalid_claim", "The token's iat is not a number.")
    if iat > ctx.now + ctx.leeway:
        raise _fail("iat_in_future", "The token was issued in the future.")
    if ctx.max_iat_age_seconds is not None and ctx.now - iat > (
        ctx.max_iat_age_seconds + ctx.leeway
    ):
        raise _fail("iat_too_old", "The token was issued too long ago.")


def validate_nonce(ctx: _Context) -> None:
    """Step 11: "If a nonce value was sent in the Authentication Request, a nonce Claim MUST be
    present and its value checked to verify that it is the same value as the one that was sent
    in the Authentication Request."
    """
    if ctx.nonce is None:
        return
    nonce = ctx.claims.get("nonce")
    if nonce is None:
        raise _fail("bad_nonce", "The token has no nonce although one was sent.")
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), ctx.nonce.encode()):
        raise _fail("bad_nonce", "The token's nonce is not the one sent.")


def validate_auth_time(ctx: _Context) -> None:
    """Step 13: "If the auth_time Claim was requested, either through a specific request for
    this Claim or by using the max_age parameter, the Client SHOULD check the auth_time Claim
    value and request re-authentication if it determines too much time has elapsed since the
    last End-User authentication." OIDC Core 3.1.2.1 (max_age): "the ID Token returned MUST
    include an auth_time Claim Value".
    """
    auth_time = ctx.claims.get("auth_time")
    if auth_time is not None and not _is_number(auth_time):
        raise _fail("invalid_claim", "The token's auth_time is not a number.")
    if ctx.max_age_seconds is None:
        return
    if auth_time is None:
        raise _fail("missing_claim", "The token has no auth_time although max_age was sent.")
    if ctx.now - auth_time > ctx.max_age_seconds + ctx.leeway:
        raise _fail("auth_time_too_old", "The end-user authenticated too long ago.")


def validate_at_hash(ctx: _Context) -> None:
    """OIDC Core 3.1.3.8 / 3.2.2.9: "Hash the octets of the ASCII representation of the
    access_token with the hash algorithm specified in JWA for the alg Header Parameter of the
    ID Token's JOSE Header. ... Take the left-most half of the hash and base64url-encode it.
    The value of at_hash in the ID Token MUST match the value produced in the previous step."
    In the code flow at_hash is OPTIONAL: checked when both it and the access token are there.
    """
    at_hash = ctx.claims.get("at_hash")
    if at_hash is None or ctx.access_token is None:
        return
    if not isinstance(at_hash, str):
        raise _fail("invalid_claim", "The token's at_hash is not a string.")
    crv = ctx.key.get("crv")
    digest = token_hash_function(ctx.alg, crv if isinstance(crv, str) else None)(
        ctx.access_token.encode("ascii")
    )
    expected = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=")
    if not hmac.compare_digest(at_hash.encode(), expected):
        raise _fail("at_hash_mismatch", "The token's at_hash does not match the access token.")


def validate_sub(ctx: _Context) -> None:
    """OIDC Core 2: "sub REQUIRED. Subject Identifier. A locally unique and never reassigned
    identifier within the Issuer for the End-User ... It MUST NOT exceed 255 ASCII characters
    in length. The sub value is a case-sensitive string."
    """
    sub = ctx.claims.get("sub")
    if sub is None or sub == "":
        raise _fail("missing_claim", "The token has no sub claim.")
    if not isinstance(sub, str) or len(sub) > 255:
        raise _fail("invalid_claim", "The token's sub is not a string of at most 255 characters.")


Rule = Callable[[_Context], None]

#: the ID token rules, in order; an empty table would be a failure, not a pass
ID_TOKEN_RULES: tuple[Rule, ...] = (
    validate_token_type,
    validate_iss,
    validate_aud,
    validate_azp,
    validate_exp,
    validate_iat,
    validate_nonce,
    validate_auth_time,
    validate_at_hash,
    validate_sub,
)


def _registry_check(ctx: _Context, *, essential: tuple[str, ...], check_aud: bool) -> None:
    """joserfc's registered-claim checks with every option spelled out (second opinion)."""
    options: dict[str, ClaimsOption] = {name: {"essential": True} for name in essential}
    options["iss"] = {"essential": True, "value": ctx.issuer}
    if check_aud:
        options["aud"] = {"essential": True, "value": ctx.client_id}
    registry = JWTClaimsRegistry(now=int(ctx.now), leeway=ctx.leeway, **options)
    try:
        registry.validate(dict(ctx.claims))
    except ExpiredTokenError as exc:
        raise _fail("token_expired", "The token has expired.") from exc
    except MissingClaimError as exc:
        raise _fail("missing_claim", f"The token lacks the claim {exc.claim!r}.") from exc
    except ClaimError as exc:
        if exc.claim == "nbf":
            raise _fail("token_not_yet_valid", "The token is not valid yet (nbf).") from exc
        raise _fail("invalid_claim", f"The token's claim {exc.claim!r} is invalid.") from exc
    except JoseError as exc:
        raise _fail("invalid_claim", "The token's claims are invalid.") from exc


def run_rules(ctx: _Context, rules: tuple[Rule, ...]) -> None:
    """Run ``rules`` in order; fail closed when there are none."""
    if not rules:
        raise ConfigurationError("no_rules", "No validation rules configured.")
    for rule in rules:
        rule(ctx)


def _check_leeway(leeway_seconds: int) -> int:
    if not 0 <= leeway_seconds <= MAX_LEEWAY_SECONDS:
        raise ConfigurationError(
            "invalid_leeway", f"leeway_seconds must be within 0..{MAX_LEEWAY_SECONDS}."
        )
    return int(leeway_seconds)


class IDTokenValidator:
    """Validates the ID tokens of one provider for one client (thread-safe, reusable).

    :param metadata: the provider metadata (issuer, advertised algorithms)
    :param jwks: the provider's key cache
    :param client_id: our client id (the required audience)
    :param leeway_seconds: clock-skew allowance for exp / iat / auth_time
    :param allowed_algs: restrict further the algorithms accepted (``None``: all that are both
        advertised — default RS256 — and asymmetric)
    :param trusted_audiences: audiences besides ``client_id`` that may appear in ``aud``
    :param clock: wall clock in seconds since the epoch
    """

    def __init__(
        self,
        *,
        metadata: ProviderMetadata,
        jwks: JWKSCache,
        client_id: str,
        leeway_seconds: int,
        allowed_algs: Collection[str] | None = None,
        trusted_audiences: Collection[str] = frozenset(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metadata = metadata
        self.jwks = jwks
        self.client_id = client_id
        self.leeway = _check_leeway(leeway_seconds)
        self.algorithms = allowed_algorithms(
            metadata.id_token_signing_alg_values_supported, allowed_algs
        )
        self.trusted_audiences = frozenset(trusted_audiences)
        self._clock = clock

    def validate(
        self,
        raw_jwt: str,
        *,
        nonce: str | None,
        now: float | None = None,
        access_token: str | None = None,
        max_age_seconds: int | None = None,
        max_iat_age_seconds: int | None = None,
    ) -> VerifiedIDTokenClaims:
        """Verify the signature, then every rule; return the verified claims.

        :raises TokenValidationError: with the code of the first rule that failed
        :raises IdPUnavailableError: the provider's keys could not be fetched at all
        """
        verified = verify_signed_jwt(
            raw_jwt, jwks=self.jwks, allowed_algs=self.algorithms, what="ID token"
        )
        ctx = _Context(
            claims=verified.claims,
            header=verified.header,
            alg=verified.alg,
            key=verified.key,
            issuer=self.metadata.issuer,
            client_id=self.client_id,
            trusted_audiences=self.trusted_audiences,
            now=self._clock() if now is None else now,
            leeway=self.leeway,
            nonce=nonce,
            access_token=access_token,
            max_age_seconds=max_age_seconds,
            max_iat_age_seconds=max_iat_age_seconds,
        )
        run_rules(ctx, ID_TOKEN_RULES)
        _registry_check(ctx, essential=("sub", "exp", "iat"), check_aud=True)
        return VerifiedIDTokenClaims(dict(verified.claims))


def validate_id_token(
    raw_jwt: str,
    *,
    metadata: ProviderMetadata,
    jwks: JWKSCache,
    client_id: str,
    nonce: str | None,
    leeway_seconds: int,
    now: float | None = None,
    access_token: str | None = None,
    max_age_seconds: int | None = None,
    allowed_algs: Collection[str] | None = None,
    trusted_audiences: Collection[str] = frozenset(),
    max_iat_age_seconds: int | None = None,
) -> VerifiedIDTokenClaims:
    """Validate an ID token per OIDC Core 3.1.3.7; see :class:`IDTokenValidator`.

    ``nonce`` is the value sent in the authentication request (``None`` when none was sent,
    e.g. tokens from native tools exchanged with ``max_iat_age_seconds``).
    """
    validator = IDTokenValidator(
        metadata=metadata,
        jwks=jwks,
        client_id=client_id,
        leeway_seconds=leeway_seconds,
        allowed_algs=allowed_algs,
        trusted_audiences=trusted_audiences,
    )
    return validator.validate(
        raw_jwt,
        nonce=nonce,
        now=now,
        access_token=access_token,
        max_age_seconds=max_age_seconds,
        max_iat_age_seconds=max_iat_age_seconds,
    )


# Long on purpose: one check per sentence of OIDC Core 12.2, quoted in the docstring.
def validate_refreshed_id_token(
    new_id_token: str | None,
    previous: VerifiedIDTokenClaims,
    *,
    metadata: ProviderMetadata,
    jwks: JWKSCache,
    client_id: str,
    leeway_seconds: int,
    now: float | None = None,
    access_token: str | None = None,
    allowed_algs: Collection[str] | None = None,
    trusted_audiences: Collection[str] = frozenset(),
) -> VerifiedIDTokenClaims | None:
    """Validate the ID token of a refresh response against the original (OIDC Core 12.2).

    Returns ``None`` when the response had no ID token (allowed: keep the previous claims).

    OIDC Core 12.2: "its iss Claim Value MUST be the same as in the ID Token issued when the
    original authentication occurred, its sub Claim Value MUST be the same ..., its iat Claim
    MUST represent the time that the new ID Token is issued, its aud Claim Value MUST be the
    same ..., if the ID Token contains an auth_time Claim, its value MUST represent the time of
    the original authentication - not the time that the new ID token is issued, its azp Claim
    Value MUST be the same ...; if no azp Claim was present in the original ID Token, one MUST
    NOT be present in the new ID Token, and otherwise, the same rules apply as apply when
    issuing an ID Token at the time of the original authentication." And: "it SHOULD NOT have
    a nonce Claim Value. If the ID Token contains a nonce, it MUST be the same value as in the
    original".
    """
    if new_id_token is None:
        return None
    claims = validate_id_token(
        new_id_token,
        metadata=metadata,
        jwks=jwks,
        client_id=client_id,
        nonce=None,
        leeway_seconds=leeway_seconds,
        now=now,
        access_token=access_token,
        allowed_algs=allowed_algs,
        trusted_audiences=trusted_audiences,
    )
    if claims.get("iss") != previous.get("iss"):
        raise _fail("issuer_mismatch", "The refreshed ID token has another issuer.")
    if claims.get("sub") != previous.get("sub"):
        raise _fail("sub_mismatch", "The refreshed ID token names another subject.")
    if sorted(audiences(claims)) != sorted(audiences(previous)):
        raise _fail("audience_mismatch", "The refreshed ID token has other audiences.")
    if claims.get("azp") != previous.get("azp"):
        raise _fail("azp_mismatch", "The refreshed ID token has another azp.")
    if "nonce" in claims:
        original = previous.get("nonce")
        new = claims["nonce"]
        if (
            not isinstance(original, str)
            or not isinstance(new, str)
            or not hmac.compare_digest(new.encode(), original.encode())
        ):
            raise _fail("bad_nonce", "The refreshed ID token's nonce differs from the original.")
    if (
        "auth_time" in claims
        and "auth_time" in previous
        and claims["auth_time"] != previous["auth_time"]
    ):
        raise _fail(
            "auth_time_mismatch",
            "The refreshed ID token's auth_time differs from the original authentication.",
        )
    return claims
