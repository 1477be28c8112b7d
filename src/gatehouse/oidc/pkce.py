"""Proof Key for Code Exchange (RFC 7636), S256 only.

``plain`` is never used: it protects nothing against an attacker who can read the
authorization request.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

__all__ = ["CODE_CHALLENGE_METHOD", "challenge_s256", "generate_verifier"]

CODE_CHALLENGE_METHOD = "S256"

# RFC 7636 4.1: code-verifier = 43*128unreserved
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def generate_verifier(nbytes: int = 48) -> str:
    """A fresh code verifier: ``nbytes`` random bytes, base64url (48 bytes → 64 characters).

    RFC 7636 4.1: "a high-entropy cryptographic random STRING ... with a minimum length of 43
    characters and a maximum length of 128 characters".
    """
    if not 32 <= nbytes <= 96:
        raise ValueError("nbytes must give a verifier of 43 to 128 characters")
    return secrets.token_urlsafe(nbytes)


def challenge_s256(verifier: str) -> str:
    """RFC 7636 4.2: ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`` without padding."""
    if not _VERIFIER_RE.fullmatch(verifier):
        raise ValueError("code verifier must be 43-128 unreserved characters (RFC 7636 4.1)")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
