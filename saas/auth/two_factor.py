"""TOTP two-factor authentication: the secret sealed under the master key, each code accepted once."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import CursorResult, or_, update
from sqlalchemy.orm.attributes import set_committed_value

from saas.auth.models import User
from saas.extensions import immediate_transaction
from saas.timeutil import utcnow

ISSUER = "Quanyi"


def _sealing_key() -> bytes:
    master = base64.b64decode(current_app.config["QUANYI_MASTER_KEY"])
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"quanyi totp secrets").derive(master)


def seal_secret(user_id: int, secret: str) -> bytes:
    """Encrypt a TOTP secret for storage, bound to its user."""
    nonce = os.urandom(12)
    return nonce + AESGCM(_sealing_key()).encrypt(nonce, secret.encode(), f"user:{user_id}".encode())


def unseal_secret(user_id: int, sealed: bytes) -> str:
    """Decrypt a stored TOTP secret."""
    return AESGCM(_sealing_key()).decrypt(sealed[:12], sealed[12:], f"user:{user_id}".encode()).decode()


def new_secret() -> str:
    """Return a fresh base32 TOTP secret."""
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    """Return the otpauth:// URI an authenticator app imports."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """Return the 30-second step `code` is valid for (allowing one step of clock drift), or None."""
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    moment = time.time() if now is None else now
    for drift in (0, -1, 1):
        step = int(moment // 30) + drift
        if totp.at(step * 30) == code:
            return step
    return None


def verify_code(user: User, code: str, now: float | None = None) -> bool:
    """Check a login code for the user; a code already used (same or older step) is refused.

    The step is claimed by one conditional UPDATE, so of any number of sessions sending the same code at
    once exactly one wins; the caller commits.
    """
    if user.totp_secret_sealed is None or user.totp_enabled_at is None:
        return False
    step = matching_step(unseal_secret(user.id, user.totp_secret_sealed), code, now)
    if step is None:
        return False
    with immediate_transaction() as session:
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(User)
            .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
    if result.rowcount != 1:
        return False
    set_committed_value(user, "totp_last_step", step)  # what the row now holds
    return True


def enable(user: User, secret: str, code: str) -> bool:
    """Turn two-factor on once the user proves their app shows the right code."""
    step = matching_step(secret, code)
    if step is None:
        return False
    user.totp_secret_sealed = seal_secret(user.id, secret)
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    return True


def disable(user: User) -> None:
    """Turn two-factor off."""
    user.totp_secret_sealed = None
    user.totp_enabled_at = None
    user.totp_last_step = None
