"""Secrets at rest and token hashing.

``SecretBox`` encrypts with AES-256-GCM under a key derived (HKDF-SHA256) from
``GATEHOUSE_SECRET_KEY``. Each ciphertext starts with a version byte and a 4-byte key id, so a key
rotation can keep decrypting with the old key while everything is re-encrypted with the new one
(see ``gatehouse.domain.keyrotation``).

A box built with ``refresh`` (the key file's keyring) re-reads it at most every
``REFRESH_SECONDS`` before encrypting or signing, and at once on a ciphertext made under a key id
it does not know: a running server follows ``gatehouse keys rotate`` without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
REFRESH_SECONDS = 2.0


class EncryptionContext(StrEnum):
    """Every AES-GCM associated-data label, one per kind of secret at rest (the one table).

    A ciphertext decrypts only under the label it was written with, so a value cannot be moved
    to another column and still decrypt; ``OIDC_FLOW`` is followed by the flow's state hash,
    which binds each value to its row as well. ``keyrotation.COLUMNS`` says where each one is
    stored; a test checks that every label and every encrypted column appears there.
    """

    IDP_CLIENT_SECRET = "idp_config.client_secret"  # noqa: S105 - a label, not a secret
    IDP_PRIVATE_KEY = "idp_config.private_key_jwk"
    SESSION_ID_TOKEN = "session.id_token"  # noqa: S105 - a label, not a secret
    SESSION_ID_TOKEN_CLAIMS = "session.id_token_claims"  # noqa: S105 - a label, not a secret
    SESSION_REFRESH_TOKEN = "session.refresh_token"  # noqa: S105 - a label, not a secret
    OIDC_FLOW = "oidc_flow:"  # + the flow's state hash
    SIGNING_KEY = "signing-key"
    SYNC_CREDENTIAL = "sync-credential"


class BrowserContext(StrEnum):
    """Labels of values the browser holds for us, sealed (:func:`seal`): never stored in the
    database, so key rotation has nothing to re-encrypt; each lives minutes, and a value sealed
    under the previous key still opens during a rotation."""

    #: the ID token of a refused sign-in, kept only to sign out at the IdP (RP-initiated logout)
    REFUSED_SIGN_IN = "browser.refused_sign_in"
    #: what a form held when its session had ended, to fill it in again after sign-in
    FORM_DRAFT = "browser.form_draft"


class DecryptionError(Exception):
    """A ciphertext was tampered with or was made under a key we no longer have."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gatehouse/v1", info=purpose).derive(
        secret
    )


def key_id_of(secret: bytes) -> bytes:
    """The 4-byte id that ciphertexts made under ``secret`` carry."""
    return hashlib.sha256(_derive(secret, b"secret-box")).digest()[:4]


class SecretBox:
    """AES-GCM with the active key; older keys only decrypt (and verify MACs)."""

    def __init__(
        self,
        secret: bytes,
        *old_secrets: bytes,
        refresh: Callable[[], Sequence[bytes]] | None = None,
    ) -> None:
        self._refresh = refresh
        self._lock = threading.Lock()
        self._checked_at = time.monotonic()
        self._load((secret, *old_secrets))

    def _load(self, secrets_: Sequence[bytes]) -> None:
        keys: dict[bytes, AESGCM] = {}
        macs: list[bytes] = []
        for item in secrets_:
            key = _derive(item, b"secret-box")
            keys.setdefault(hashlib.sha256(key).digest()[:4], AESGCM(key))
            macs.append(_derive(item, b"mac"))
        self._secrets = tuple(secrets_)
        self._active_id = key_id_of(secrets_[0])
        self._keys = keys
        self.mac_key = macs[0]
        self._mac_keys = tuple(macs)

    def _maybe_refresh(self, *, force: bool = False) -> None:
        if self._refresh is None:
            return
        now = time.monotonic()
        if not force and now - self._checked_at < REFRESH_SECONDS:
            return
        with self._lock:
            self._checked_at = now
            try:
                current = tuple(self._refresh())
            except OSError:
                return  # an unreadable key file never costs us the keys we hold
            if current and current != self._secrets:
                self._load(current)

    @property
    def active_key_id(self) -> bytes:
        return self._active_id

    @property
    def key_ids(self) -> frozenset[bytes]:
        return frozenset(self._keys)

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        self._maybe_refresh()
        active = self._active_id
        nonce = os.urandom(12)
        body = self._keys[active].encrypt(nonce, plaintext, context)
        return _VERSION + active + nonce + body

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> bytes:
        if len(blob) < 1 + 4 + 12 + 16 or blob[:1] != _VERSION:
            raise DecryptionError("not a Gatehouse ciphertext")
        aead = self._keys.get(blob[1:5])
        if aead is None:
            self._maybe_refresh(force=True)  # another process may have rotated the key file
            aead = self._keys.get(blob[1:5])
        if aead is None:
            raise DecryptionError("encrypted with a key this server does not have")
        try:
            return aead.decrypt(blob[5:17], blob[17:], context)
        except InvalidTag as exc:
            raise DecryptionError("ciphertext failed authentication") from exc

    def encrypt_str(self, value: str, *, context: str = "") -> bytes:
        return self.encrypt(value.encode(), context=context.encode())

    def decrypt_str(self, blob: bytes, *, context: str = "") -> str:
        return self.decrypt(blob, context=context.encode()).decode()

    def encrypt_optional(self, value: str | None, *, context: str) -> bytes | None:
        """:meth:`encrypt_str` for a column that may hold nothing (None stays None)."""
        return self.encrypt_str(value, context=context) if value is not None else None

    def decrypt_optional(self, blob: bytes | None, *, context: str) -> str | None:
        """:meth:`decrypt_str` for a column that may hold nothing (None stays None)."""
        return self.decrypt_str(blob, context=context) if blob is not None else None

    def is_current(self, blob: bytes) -> bool:
        return blob[1:5] == self._active_id

    def sign(self, message: str) -> str:
        self._maybe_refresh()
        return hmac.new(self.mac_key, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        """Any key of the ring verifies: forms signed just before a rotation stay valid."""
        ok = False
        for mac_key in self._mac_keys:
            expected = hmac.new(mac_key, message.encode(), hashlib.sha256).hexdigest()
            ok |= hmac.compare_digest(expected, signature)
        return ok


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def seal(box: SecretBox, payload: dict[str, Any], *, context: BrowserContext, seconds: int) -> str:
    """``payload`` encrypted and authenticated for the browser to hold (a cookie value), with
    an expiry inside the ciphertext: only this installation can read it, and only under
    ``context``, until ``seconds`` from now."""
    body = json.dumps({"exp": int(time.time()) + seconds, "v": payload}, separators=(",", ":"))
    blob = box.encrypt_str(body, context=context)
    return base64.urlsafe_b64encode(blob).rstrip(b"=").decode()


def unseal(box: SecretBox, value: str | None, *, context: BrowserContext) -> dict[str, Any] | None:
    """What :func:`seal` sealed, or ``None``: absent, tampered with, another context, expired."""
    if not value or len(value) > 8192:
        return None
    try:
        blob = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(box.decrypt_str(blob, context=context))
    except (ValueError, DecryptionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("v"), dict):
        return None
    exp = data.get("exp")
    if not isinstance(exp, int) or exp <= time.time():
        return None
    payload: dict[str, Any] = data["v"]
    return payload
