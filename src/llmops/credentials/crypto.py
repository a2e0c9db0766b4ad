"""AES-256-GCM sealing of one credential under the master key.

Each seal draws a fresh random 96-bit nonce. The credential's name is authenticated with it
(associated data), so a ciphertext copied onto another name's row does not open. The key's
fingerprint (``key_id``: the first 16 hex digits of its SHA-256) names the key that sealed a row
without revealing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from llmops.credentials.errors import CredentialUnreadable, MasterKeyError

KEY_BYTES = 32
NONCE_BYTES = 12
_AAD_PREFIX = b"llmops-credential:"


class MasterKey:
    """32 secret bytes; its text form is base64 (what LLMOPS_MASTER_KEY and the key file hold)."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"a master key is {KEY_BYTES} bytes, this one is {len(key)}")
        self._key = key
        self.key_id = hashlib.sha256(key).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def from_text(cls, text: str, origin: str) -> MasterKey:
        """Decode base64 text; ``origin`` says where it came from in the error (never the text)."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise MasterKeyError(
                f"{origin}: not base64 (expected base64 of {KEY_BYTES} random bytes)"
            ) from None
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"{origin}: decodes to {len(key)} bytes, a master key is {KEY_BYTES}")
        return cls(key)

    def text(self) -> str:
        return base64.b64encode(self._key).decode("ascii")

    def seal(self, name: str, secret: str) -> tuple[bytes, bytes]:
        """``(nonce, ciphertext)`` of ``secret``, bound to the credential ``name``."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_BYTES)
        return nonce, AESGCM(self._key).encrypt(nonce, secret.encode("utf-8"), _aad(name))

    def open(self, name: str, nonce: bytes, ciphertext: bytes) -> str:
        """The secret sealed under ``name``; :class:`CredentialUnreadable` if the key or name differ."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(self._key).decrypt(bytes(nonce), bytes(ciphertext), _aad(name)).decode("utf-8")
        except (InvalidTag, ValueError):
            raise CredentialUnreadable(
                f"credential {name!r} does not open with master key {self.key_id} "
                "(another key sealed it, or the row was altered)"
            ) from None

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MasterKey) and other.key_id == self.key_id

    def __hash__(self) -> int:
        return hash(self.key_id)


def _aad(name: str) -> bytes:
    return _AAD_PREFIX + name.encode("utf-8")
