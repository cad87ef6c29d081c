"""Envelope encryption for card keys: AES-256-GCM data keys per tenant, wrapped by the master key.

The master key (config `QUANYI_MASTER_KEY`, base64 of 32 bytes) never encrypts data itself; it wraps
each tenant's data keys (one to encrypt, one to hash). Card keys are encrypted one by one under the
tenant's data key with the tenant and right bound in as associated data, so a ciphertext copied to
another tenant or right fails to decrypt. A keyed hash (HMAC-SHA256 under the tenant's hash key) finds
duplicates without decrypting anything.

This module is pure: it knows bytes and ids, not tables. `catalog.keyring` stores the wrapped keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
PURPOSES = ("encrypt", "hash")


class CryptoError(ValueError):
    """A key is malformed, or a ciphertext does not open with the key and context given."""


def decode_master_key(value: str | bytes | None) -> bytes:
    """Read a master key written as base64 of 32 bytes; raise CryptoError otherwise."""
    if not value:
        raise CryptoError("no master key is configured (QUANYI_MASTER_KEY)")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise CryptoError("the master key is not valid base64") from error
    if len(raw) != KEY_BYTES:
        raise CryptoError(f"the master key must be {KEY_BYTES} bytes, base64-encoded (got {len(raw)})")
    return raw


def key_fingerprint(key: bytes) -> str:
    """Name a key without revealing it: the first 16 hex digits of a SHA-256 over a label and the key."""
    return hashlib.sha256(b"quanyi-key-fingerprint:" + key).hexdigest()[:16]


def new_data_key() -> bytes:
    """Return a fresh random 256-bit data key."""
    return os.urandom(KEY_BYTES)


def _wrap_context(tenant_id: int, purpose: str) -> bytes:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    return f"quanyi:data-key:{tenant_id}:{purpose}".encode()


def wrap_data_key(master_key: bytes, tenant_id: int, purpose: str, data_key: bytes) -> bytes:
    """Encrypt a tenant's data key under the master key (nonce + ciphertext), bound to tenant and purpose."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master_key).encrypt(nonce, data_key, _wrap_context(tenant_id, purpose))


def unwrap_data_key(master_key: bytes, tenant_id: int, purpose: str, wrapped: bytes) -> bytes:
    """Open a wrapped data key; CryptoError when the master key or the binding is wrong."""
    try:
        key = AESGCM(master_key).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_context(tenant_id, purpose)
        )
    except InvalidTag as error:
        raise CryptoError("the data key does not open with this master key") from error
    if len(key) != KEY_BYTES:
        raise CryptoError("the unwrapped data key has the wrong length")
    return key


def card_key_context(tenant_id: int, right_id: int) -> bytes:
    """Return the associated data that binds a card key's ciphertext to its tenant and right."""
    return b"quanyi:card-key:%d:%d" % (tenant_id, right_id)


@dataclass(frozen=True)
class CardKeyCipher:
    """Encrypt, decrypt and hash card keys of one tenant and right (build once per import, reuse per row)."""

    tenant_id: int
    right_id: int
    data_key: bytes
    hash_key: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "_aead", AESGCM(self.data_key))
        object.__setattr__(self, "_context", card_key_context(self.tenant_id, self.right_id))

    def encrypt(self, plaintext: bytes) -> bytes:
        """Return nonce + AES-256-GCM ciphertext (with tag) of one card key."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, self._context)  # type: ignore[attr-defined]

    def decrypt(self, blob: bytes) -> bytes:
        """Open one card key; CryptoError when it was sealed for another tenant, right or key."""
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], self._context)  # type: ignore[attr-defined]
        except InvalidTag as error:
            raise CryptoError("this card key does not belong to this tenant and right") from error

    def lookup_hash(self, identity: bytes) -> bytes:
        """Return the keyed hash (HMAC-SHA256) that finds a card key without decrypting it."""
        return hmac.new(self.hash_key, identity, hashlib.sha256).digest()
