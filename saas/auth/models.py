"""Users: global accounts that may belong to several tenants."""

from __future__ import annotations

import datetime as dt

from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from saas.extensions import db
from saas.ids import new_id
from saas.timeutil import utcnow


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    """A person who signs in; roles live on memberships, per tenant."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(10))
    is_active_flag: Mapped[bool] = mapped_column(default=True)
    # Bumped on every password change; part of the session id, so old sessions stop working.
    session_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)  # AES-GCM under the master key
    totp_enabled_at: Mapped[dt.datetime | None]
    totp_last_step: Mapped[int | None]  # the last accepted 30-second step: a code works once

    @property
    def has_two_factor(self) -> bool:
        return self.totp_enabled_at is not None

    def set_password(self, password: str) -> None:
        """Hash with scrypt (werkzeug's default KDF) and invalidate existing sessions."""
        method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt") if has_app_context() else "scrypt"
        self.password_hash = generate_password_hash(password, method=method)
        self.session_version = (self.session_version or 0) + 1

    def check_password(self, password: str) -> bool:
        """Tell whether `password` is this user's."""
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """Identify the session as user id plus session version (see `session_version`)."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_active(self) -> bool:
        return self.is_active_flag


def normalise_email(email: str) -> str:
    """Return the canonical form of an email address (trimmed, lower case)."""
    return email.strip().lower()


class LoginAttempts(db.Model):  # type: ignore[name-defined]
    """Wrong passwords and codes in a row for one email address, whether or not an account uses it.

    Keyed by a digest of the address so that an unknown address locks exactly like a real one (the
    lockout answer tells nobody which accounts exist) and no typed-in address is stored in clear.
    """

    __tablename__ = "login_attempts"

    email_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)  # attempts claimed since the last full login
    locked_until: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
