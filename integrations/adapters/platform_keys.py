"""Credentials and RSA keys of the payment platforms (WeChat Pay, Alipay), with `cryptography` alone.

A channel configured by credentials stores them as one JSON object sealed like a secret; the webhook
endpoint hands adapters the opened bytes. Parsing them and loading their keys is cached by those bytes
(a flash sale verifies thousands of notifications with the same key).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from flask_babel import lazy_gettext as _l

from integrations.adapters.base import InvalidCredentials

_BARE_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


@functools.lru_cache(maxsize=1024)
def _parsed(secret: bytes) -> dict[str, Any] | None:
    try:
        found = json.loads(secret)
    except (UnicodeDecodeError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def credentials_of(secret: bytes) -> dict[str, Any] | None:
    """Return the credentials object a channel secret holds; None when it holds a plain secret."""
    return _parsed(bytes(secret))


def seal_form(credentials: dict[str, Any]) -> str:
    """Return credentials as the text sealed for the channel (compact JSON, keys sorted)."""
    return json.dumps(credentials, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _pem(text: str) -> bytes:
    """Accept a PEM, or the bare base64 of a public key as the Alipay console shows it."""
    text = text.strip()
    if "-----BEGIN" in text:
        return text.encode()
    if not _BARE_BASE64.match(text):
        raise ValueError("not base64")
    body = "".join(text.split())
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{lines}\n-----END PUBLIC KEY-----\n".encode()


@functools.lru_cache(maxsize=256)
def public_key(text: str) -> rsa.RSAPublicKey:
    """Load an RSA public key from a PEM public key, a PEM certificate or bare base64; ValueError if none."""
    pem = _pem(text)
    key: object
    if b"CERTIFICATE" in pem:
        key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        key = load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA key")
    return key


def checked_key(value: Any, what: str) -> str:
    """Return a public key's text after checking it loads; InvalidCredentials otherwise."""
    text = str(value or "").strip()
    try:
        public_key(text)
    except (ValueError, TypeError, binascii.Error) as error:
        raise InvalidCredentials(
            str(_l("%(what)s is not an RSA public key or certificate in PEM.", what=what))
        ) from error
    return text


def required_text(credentials: dict[str, Any], name: str, limit: int = 200) -> str:
    """Return a required credentials field as trimmed text; InvalidCredentials when absent or too long."""
    value = credentials.get(name)
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text or len(text) > limit or any(c.isspace() for c in text):
        raise InvalidCredentials(str(_l("credentials.%(name)s is required (no spaces).", name=name)))
    return text


def verify_rsa_sha256(key_text: str, message: bytes, signature: str) -> bool:
    """Tell whether `signature` (base64) is SHA256withRSA (PKCS#1 v1.5) of `message` under the key."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key(key_text).verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        return False
    return True
