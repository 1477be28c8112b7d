"""Password hashing (argon2id) and the strength rule for local passwords."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gatehouse.domain.errors import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 1024

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so both paths cost one argon2 verify.
    Made on first use: hashing at import cost every ``gatehouse`` command a third of a second."""
    return _hasher.hash("gatehouse-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-cost check: an absent hash still runs one argon2 verification."""
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def check_strength(password: str, username: str) -> None:
    """At least 12 characters and not the username (compared casefolded)."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise InvalidInput(
            f"The password must be at least {MIN_LENGTH} characters long.", code="weak_password"
        )
    if len(password) > MAX_LENGTH:
        raise InvalidInput(
            f"The password must be at most {MAX_LENGTH} characters long.", code="weak_password"
        )
    if password.casefold() == username.casefold():
        raise InvalidInput("The password must not be the username.", code="weak_password")
