"""Secrets at rest and token hashing.

``SecretBox`` encrypts with AES-256-GCM under a key derived (HKDF-SHA256) from
``GATEHOUSE_SECRET_KEY``. Each ciphertext starts with a version byte and a 4-byte key id, so a key
rotation can keep decrypting with the old key while everything is re-encrypted with the new one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"


class DecryptionError(Exception):
    """A ciphertext was tampered with or was made under a key we no longer have."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gatehouse/v1", info=purpose).derive(
        secret
    )


class SecretBox:
    """AES-GCM with the active key; older keys only decrypt."""

    def __init__(self, secret: bytes, *old_secrets: bytes) -> None:
        self._keys: dict[bytes, AESGCM] = {}
        self._active_id = b""
        for index, item in enumerate((secret, *old_secrets)):
            key = _derive(item, b"secret-box")
            key_id = hashlib.sha256(key).digest()[:4]
            self._keys[key_id] = AESGCM(key)
            if index == 0:
                self._active_id = key_id
        self.mac_key = _derive(secret, b"mac")

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        body = self._keys[self._active_id].encrypt(nonce, plaintext, context)
        return _VERSION + self._active_id + nonce + body

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> bytes:
        if len(blob) < 1 + 4 + 12 + 16 or blob[:1] != _VERSION:
            raise DecryptionError("not a Gatehouse ciphertext")
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

    def is_current(self, blob: bytes) -> bool:
        return blob[1:5] == self._active_id

    def sign(self, message: str) -> str:
        return hmac.new(self.mac_key, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
