"""Webhook signatures, pure functions over bytes: the platforms' schemes and our own.

- `base64_hmac`: base64 of HMAC-SHA256 over the raw body (Shopify, WooCommerce).
- timestamped scheme (Stripe's, and ours under the `Quanyi-Signature` header):
  `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`; several `v1=` may appear (secret rotation),
  any one matching is enough; a timestamp further than `tolerance` seconds from now is refused.

Comparisons are constant-time. Nothing here logs or stores a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_TOLERANCE_SECONDS = 300


def base64_hmac(secret: bytes, body: bytes) -> str:
    """Return base64(HMAC-SHA256(secret, body)), as Shopify and WooCommerce send it."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def verify_base64_hmac(secrets: Iterable[bytes], body: bytes, signature: str | None) -> bool:
    """Tell whether `signature` is the base64 HMAC of `body` under any of `secrets`."""
    if not signature:
        return False
    given = signature.strip().encode()
    return any(hmac.compare_digest(base64_hmac(secret, body).encode(), given) for secret in secrets)


def timestamped_hmac(secret: bytes, timestamp: int, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of "<timestamp>." + body (the v1 value of the timestamped scheme)."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign_timestamped(secret: bytes, body: bytes, timestamp: int) -> str:
    """Return a header value `t=<timestamp>,v1=<signature>` for `body`."""
    return f"t={timestamp},v1={timestamped_hmac(secret, timestamp, body)}"


@dataclass(frozen=True)
class TimestampedSignature:
    """A parsed `t=…,v1=…` header: the timestamp and every v1 signature in it."""

    timestamp: int
    signatures: tuple[str, ...]


def parse_timestamped(header: str | None) -> TimestampedSignature | None:
    """Read a `t=…,v1=…[,v1=…]` header; None when it has no timestamp or no v1 signature."""
    if not header:
        return None
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value.strip())
    if timestamp is None or not signatures:
        return None
    return TimestampedSignature(timestamp, tuple(signatures))


def verify_timestamped(
    secrets: Iterable[bytes],
    body: bytes,
    header: str | None,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Tell whether `header` signs `body` under any secret, with a timestamp within `tolerance` of now."""
    parsed = parse_timestamped(header)
    if parsed is None or abs(now - parsed.timestamp) > tolerance:
        return False
    for secret in secrets:
        expected = timestamped_hmac(secret, parsed.timestamp, body).encode()
        if any(hmac.compare_digest(expected, given.encode()) for given in parsed.signatures):
            return True
    return False
