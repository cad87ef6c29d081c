"""Account use cases: authenticate, password reset by signed link, preferences."""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import cache

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.security import check_password_hash, generate_password_hash

from saas import outbox
from saas.auth import two_factor
from saas.auth.models import LoginAttempts, User, normalise_email
from saas.extensions import db, immediate_transaction, is_postgres
from saas.links import public_url
from saas.timeutil import utcnow

MIN_PASSWORD_LENGTH = 10


class AccountError(ValueError):
    """A user-facing failure of an account action."""


def load_session_user(session_id: str) -> User | None:
    """Load the user of a session id `"<user id>:<session version>"`; stale versions are logged out."""
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user


def find_user(email: str) -> User | None:
    """Return the user with this email, if any."""
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def check_new_password(password: str) -> None:
    """Refuse passwords too short to be safe."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(_("Passwords need at least %(n)d characters.", n=MIN_PASSWORD_LENGTH))


def create_user(email: str, name: str, password: str) -> User:
    """Add a new user to the session (the caller commits); refuses a taken email."""
    check_new_password(password)
    if find_user(email):
        raise AccountError(_("An account with this email already exists; log in instead."))
    user = User(email=normalise_email(email), name=name.strip() or normalise_email(email))
    user.set_password(password)
    db.session.add(user)
    return user


class AccountLocked(AccountError):
    """Too many wrong passwords or codes in a row: the address waits before it accepts another try."""


def _attempts_key(email: str) -> str:
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()


def claim_login_attempt(email: str) -> None:
    """Count one attempt (password or code) for `email` before it is checked; AccountLocked when none is left.

    One conditional UPDATE claims the attempt, committed before the password or code is checked, so that
    however many requests arrive at once, at most LOGIN_LOCKOUT_FAILURES are ever checked before the
    lock. The attempt that reaches the limit sets the lock; a full login clears it (`clear_login_attempts`).
    Unknown addresses are counted the same way: the answer never tells which accounts exist.
    """
    key = _attempts_key(email)
    limit = int(current_app.config["LOGIN_LOCKOUT_FAILURES"])
    now = utcnow()
    until = now + dt.timedelta(minutes=int(current_app.config["LOGIN_LOCKOUT_MINUTES"]))
    table = LoginAttempts.__table__
    key_matches = table.c.email_digest == key
    lock_over = and_(table.c.locked_until.is_not(None), table.c.locked_until <= now)
    failures = case((lock_over, 1), else_=table.c.failures + 1)
    claim = (
        update(table)
        .where(key_matches, or_(table.c.locked_until.is_(None), lock_over))
        .values(
            failures=failures,
            locked_until=case((failures >= limit, until), else_=None),
            updated_at=now,
        )
        .returning(table.c.failures)
    )
    dialect = postgresql if is_postgres() else sqlite
    with immediate_transaction() as session:
        session.execute(
            dialect.insert(table)
            .values(email_digest=key, failures=0, locked_until=None, updated_at=now)
            .on_conflict_do_nothing()
        )
        claimed = session.execute(claim).first()
        locked_until = None if claimed else session.scalar(select(table.c.locked_until).where(key_matches))
        session.commit()
    if claimed is None:
        minutes = max(1, int(((locked_until or until) - now).total_seconds() // 60) + 1)
        raise AccountLocked(
            _(
                "Too many wrong attempts: signing in with this email address is locked for %(n)d more "
                "minutes. You can reset the password by email.",
                n=minutes,
            )
        )


def clear_login_attempts(email: str) -> None:
    """Forget the wrong attempts of `email` after a full login or a password reset (the caller commits)."""
    db.session.execute(
        update(LoginAttempts.__table__)
        .where(LoginAttempts.__table__.c.email_digest == _attempts_key(email))
        .values(failures=0, locked_until=None, updated_at=utcnow())
    )


@cache
def _decoy_hash(method: str) -> str:
    return generate_password_hash("not-anyone's-password", method=method)


def authenticate(email: str, password: str) -> User | None:
    """Return the user if the password matches; lock the address after repeated failures.

    The lock stops password guessing against one account from many addresses (the per-IP rate limit
    covers the rest). A success clears the count unless a two-factor code is still to come: then only the
    code clears it, so knowing the password buys no extra code guesses. An unknown address costs the same
    hash and gets the same answers as a real one.
    """
    claim_login_attempt(email)
    user = find_user(email)
    if user is None or not user.is_active:
        check_password_hash(_decoy_hash(current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")), password)
        return None
    if not user.check_password(password):
        return None
    if not user.has_two_factor:
        clear_login_attempts(user.email)
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def _reset_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="password-reset")


def password_reset_url(user_id: int | str) -> str:
    """Sign a reset link for a user now, on PUBLIC_BASE_URL (built when the mail is sent, never queued)."""
    user = db.session.get(User, int(user_id))
    if user is None:
        raise LookupError("the user is gone")
    token = _reset_serializer().dumps({"u": user.id, "v": user.session_version})
    return public_url("auth.reset_password", token=token)


outbox.register_link("password_reset", password_reset_url)


def request_password_reset(email: str) -> None:
    """Email a signed reset link if the account exists; say nothing either way to the caller."""
    user = find_user(email)
    if user is None:
        return
    outbox.queue_platform_mail(
        user.email,
        _("Reset your Quanyi password"),
        _(
            "Open this link within an hour to choose a new password:\n\n%(link)s\n\n"
            "If you did not ask for it, ignore this mail.",
            link=outbox.LINK,
        ),
        kind="password_reset",
        link=("password_reset", [user.id]),
        user_id=user.id,
    )


def reset_password(token: str, new_password: str) -> User:
    """Set a new password from a reset link; the link works once and for an hour."""
    try:
        data = _reset_serializer().loads(token, max_age=current_app.config["PASSWORD_RESET_MAX_AGE"])
    except SignatureExpired as exc:
        raise AccountError(_("This reset link has expired; ask for a new one.")) from exc
    except BadSignature as exc:
        raise AccountError(_("This reset link is not valid.")) from exc
    user = db.session.get(User, data.get("u"))
    if user is None or user.session_version != data.get("v"):
        raise AccountError(_("This reset link has already been used."))
    check_new_password(new_password)
    user.set_password(new_password)
    clear_login_attempts(user.email)  # proving control of the mailbox lifts a lockout
    db.session.commit()
    return user


def change_password(user: User, current_password: str, new_password: str) -> None:
    """Change the password after checking the current one; other sessions are signed out."""
    if not user.check_password(current_password):
        raise AccountError(_("The current password is wrong."))
    check_new_password(new_password)
    user.set_password(new_password)
    db.session.commit()


def check_login_code(user: User, code: str) -> bool:
    """Accept a two-factor code at login: counted per account like passwords, each code once.

    AccountLocked when the account has no attempt left, whatever address the codes come from.
    """
    claim_login_attempt(user.email)
    accepted = two_factor.verify_code(user, code)
    if accepted:
        clear_login_attempts(user.email)
        user.last_login_at = utcnow()
        db.session.commit()
    else:
        db.session.rollback()
    return accepted


def turn_on_two_factor(user: User, secret: str, code: str) -> bool:
    """Enable two-factor once the user's app shows the right code for `secret`."""
    if not two_factor.enable(user, secret, code):
        return False
    db.session.commit()
    return True


def turn_off_two_factor(user: User, code: str) -> bool:
    """Disable two-factor after checking a current code (counted like login codes: AccountLocked)."""
    claim_login_attempt(user.email)  # a stolen session may not guess its way past the second factor
    if not two_factor.verify_code(user, code):
        db.session.rollback()
        return False
    clear_login_attempts(user.email)
    two_factor.disable(user)
    db.session.commit()
    return True


def save_preferences(user: User, name: str, locale: str | None) -> None:
    """Store the user's display name and language (None: follow the browser)."""
    user.name = name.strip() or user.name
    set_locale(user, locale)


def set_locale(user: User, locale: str | None) -> None:
    """Store the user's language (None: follow the browser)."""
    if locale not in (None, *current_app.config["LANGUAGES"]):
        raise AccountError(_("Unknown language."))
    user.locale = locale
    db.session.commit()
