"""Channel and endpoint secrets at rest: AES-256-GCM under the tenant's data key (catalog.keyring).

The associated data names the tenant, the kind of owner and its id, so a ciphertext copied onto another
channel, endpoint or tenant does not open. Opened secrets are cached in memory by ciphertext (a webhook
is verified on every request; the data key is unwrapped once per process).
"""

from __future__ import annotations

import os
import secrets as random_secrets
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from catalog import keyring
from catalog.models import TenantDataKey
from saas import crypto
from saas.extensions import db
from tenants.scoping import current_tenant_id

_NONCE = crypto.NONCE_BYTES
_opened: dict[tuple[int, str, int, bytes], bytes] = {}
_data_keys: dict[tuple[int, bytes], bytes] = {}
_lock = threading.Lock()
_CACHE_LIMIT = 10_000


def _context(tenant_id: int, owner: str, owner_id: int) -> bytes:
    return f"quanyi:{owner}-secret:{tenant_id}:{owner_id}".encode()


def _encrypt_key(tenant_id: int) -> bytes:
    wrapped = db.session.scalar(
        select(TenantDataKey.wrapped_key).where(
            TenantDataKey.tenant_id == tenant_id, TenantDataKey.purpose == "encrypt"
        )
    )
    if wrapped is None:
        keyring.ensure_tenant_keys()
        return _encrypt_key(tenant_id)
    cache_key = (tenant_id, bytes(wrapped))
    with _lock:
        known = _data_keys.get(cache_key)
    if known is not None:
        return known
    key = crypto.unwrap_data_key(keyring.master_key(), tenant_id, "encrypt", bytes(wrapped))
    with _lock:
        _data_keys[cache_key] = key
    return key


def new_secret(prefix: str = "") -> str:
    """Return a fresh random signing secret (256 bits, URL-safe), optionally prefixed (`whsec_`)."""
    return prefix + random_secrets.token_urlsafe(32)


def hint(secret: str) -> str:
    """Return what the back office may show of a secret: its last four characters."""
    return "…" + secret[-4:] if len(secret) > 8 else "…"


def seal(owner: str, owner_id: int, secret: str) -> bytes:
    """Encrypt a secret of the bound tenant's channel or endpoint; commits new data keys if needed."""
    tenant_id = current_tenant_id()
    nonce = os.urandom(_NONCE)
    aead = AESGCM(_encrypt_key(tenant_id))
    return nonce + aead.encrypt(nonce, secret.encode(), _context(tenant_id, owner, owner_id))


def open_sealed(tenant_id: int, owner: str, owner_id: int, blob: bytes) -> bytes:
    """Decrypt a sealed secret (cached by ciphertext); CryptoError when it was sealed for something else."""
    blob = bytes(blob)
    cache_key = (tenant_id, owner, owner_id, blob)
    with _lock:
        known = _opened.get(cache_key)
    if known is not None:
        return known
    aead = AESGCM(_encrypt_key(tenant_id))
    try:
        plain = aead.decrypt(blob[:_NONCE], blob[_NONCE:], _context(tenant_id, owner, owner_id))
    except InvalidTag as error:
        raise crypto.CryptoError("this secret was not sealed for this tenant and owner") from error
    with _lock:
        if len(_opened) > _CACHE_LIMIT:
            _opened.clear()
        _opened[cache_key] = plain
    return plain
