"""The customer's own subscription page: a signed link, then a one-time code sent to them.

The link (`/my/subscriptions/<token>`) is signed with the app's SECRET_KEY and names the tenant and the
subscription; it shows the subscription and its receipts. Changing anything needs an identity check: a
six-digit code sent by SMS to the customer's phone and by mail to their address, stored as a keyed hash,
valid for ten minutes and five attempts, used once. A verified visitor may act for `VERIFIED_MINUTES`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from orders.subscriptions.models import Subscription, SubscriptionAccessCode
from orders.subscriptions.periods import local_date
from orders.subscriptions.services import customer_of
from saas import outbox
from saas.extensions import db
from saas.links import public_url
from saas.phones import phone_or_none
from saas.timeutil import format_in_zone, utcnow
from tenants import audit
from tenants.models import Tenant
from tenants.outbox import SmsCodeLimited, queue_mail, queue_sms

TOKEN_SALT = "quanyi.my-subscription"
DEFAULT_LINK_DAYS = 120
CODE_MINUTES = 10
CODE_ATTEMPTS = 5
RESEND_SECONDS = 60
VERIFIED_MINUTES = 30


class LinkInvalid(ValueError):
    """A self-service link that is tampered with or expired."""


class CodeRefused(ValueError):
    """A one-time code that is wrong, expired, used up or missing (the message says which)."""


# ---------------------------------------------------------------- the signed link


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def link_max_age() -> int:
    """Return how long a self-service link stays valid, in seconds."""
    return int(current_app.config.get("MY_SUBSCRIPTION_LINK_MAX_AGE", DEFAULT_LINK_DAYS * 86400))


def self_service_token(tenant_id: int, subscription_id: int) -> str:
    """Sign a token naming one tenant's subscription."""
    return _serializer().dumps({"t": str(tenant_id), "s": str(subscription_id)})


def self_service_url(tenant_id: int | str, subscription_id: int | str) -> str:
    """Return a subscription's signed page on PUBLIC_BASE_URL (the outbox's `my_subscription` link kind).

    Signed now: a message carries `outbox.LINK` and this kind, so the link is built when it is sent.
    """
    return public_url("my_subscriptions.page", token=self_service_token(int(tenant_id), int(subscription_id)))


outbox.register_link("my_subscription", self_service_url)


def read_token(token: str) -> tuple[int, int]:
    """Return (tenant id, subscription id) from a token; LinkInvalid when tampered with or expired."""
    try:
        data: Any = _serializer().loads(token, max_age=link_max_age())
    except SignatureExpired as error:
        raise LinkInvalid("expired") from error
    except BadSignature as error:
        raise LinkInvalid("invalid") from error
    try:
        return int(data["t"]), int(data["s"])
    except (KeyError, TypeError, ValueError) as error:
        raise LinkInvalid("invalid") from error


# ---------------------------------------------------------------- the one-time code


def _code_hash(code_id: int, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{code_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _latest_code(subscription_id: int) -> SubscriptionAccessCode | None:
    return db.session.scalar(
        select(SubscriptionAccessCode)
        .where(SubscriptionAccessCode.subscription_id == subscription_id)
        .order_by(SubscriptionAccessCode.created_at.desc(), SubscriptionAccessCode.id.desc())
        .limit(1)
    )


def send_code(subscription: Subscription) -> str:
    """Send a fresh six-digit code to the customer, by SMS to a phone and by mail to an email address.

    Returns where it went (masked). A new code replaces the previous one; one code a minute at most.
    """
    customer = customer_of(subscription)
    phone = phone_or_none(customer.phone) if customer is not None else None
    email = customer.email if customer is not None else None
    if customer is None or not (email or phone):
        raise CodeRefused(_("We have no email address or mobile number for you: please contact the shop."))
    now = utcnow()
    latest = _latest_code(subscription.id)
    if (
        latest is not None
        and latest.used_at is None
        and (now - latest.created_at).total_seconds() < RESEND_SECONDS
    ):
        raise CodeRefused(_("A code was sent less than a minute ago: check your messages."))
    code = f"{secrets.randbelow(10**6):06d}"
    sent_to = [mask_phone(phone)] if phone else []
    sent_to += [mask_email(email)] if email else []
    row = SubscriptionAccessCode(
        subscription_id=subscription.id,
        code_hash="",
        sent_to=", ".join(a for a in (phone, email) if a),
        created_at=now,
        expires_at=now + dt.timedelta(minutes=CODE_MINUTES),
    )
    row.code_hash = _code_hash(row.id, code)
    db.session.add(row)
    audit.record(
        "subscription.code_sent",
        "subscription",
        subscription.id,
        actor="customer (self-service)",
        sent_to=", ".join(sent_to),
    )
    db.session.commit()
    if phone:
        _text_code(phone, code, subscription)
    if email:
        _mail_code(email, code, subscription)
    return ", ".join(sent_to)


def _text_code(phone: str, code: str, subscription: Subscription) -> None:
    # A phone that had its codes for now records nothing; the mail, if any, still goes.
    with contextlib.suppress(SmsCodeLimited):
        queue_sms(
            phone,
            "verification_code",
            {"code": code, "minutes": str(CODE_MINUTES)},
            about=("subscription", subscription.id),
        )


def _mail_code(email: str, code: str, subscription: Subscription) -> None:
    tenant = db.session.get(Tenant, subscription.tenant_id)
    with force_locale((tenant.locale if tenant else None) or "zh_CN"):
        subject = _("%(shop)s: your verification code", shop=tenant.name if tenant else "Quanyi")
        text = render_template(
            "subscriptions/mail/code.txt",
            code=code,
            minutes=CODE_MINUTES,
            tenant=tenant,
            subscription=subscription,
        )
    queue_mail(email, subject, text, kind="verification_code", about=("subscription", subscription.id))


def check_code(subscription: Subscription, code: str) -> None:
    """Accept the latest code once if it matches; count a wrong attempt otherwise (CodeRefused). Commits."""
    now = utcnow()
    row = _latest_code(subscription.id)
    if row is None or row.used_at is not None:
        raise CodeRefused(_("Ask for a code first."))
    if row.expires_at <= now:
        raise CodeRefused(_("This code has expired: ask for a new one."))
    if row.attempts >= CODE_ATTEMPTS:
        raise CodeRefused(_("Too many wrong codes: ask for a new one."))
    if not hmac.compare_digest(row.code_hash, _code_hash(row.id, code.strip())):
        row.attempts += 1
        db.session.commit()
        left = CODE_ATTEMPTS - row.attempts
        raise CodeRefused(
            _("That code is not right (%(n)s attempts left).", n=left)
            if left
            else _("Too many wrong codes: ask for a new one.")
        )
    row.used_at = now
    audit.record(
        "subscription.customer_verified", "subscription", subscription.id, actor="customer (self-service)"
    )
    db.session.commit()


def mask_phone(phone: str) -> str:
    """Show enough of a number to recognise it: +86138****5678."""
    return f"{phone[:-8]}****{phone[-4:]}" if len(phone) > 8 else "****"


def mask_email(address: str) -> str:
    """Show enough of an address to recognise it: l***@example.com."""
    name, _sep, domain = address.partition("@")
    return f"{name[:1]}***@{domain}" if domain else "***"


def verified_key(subscription: Subscription) -> str:
    """Return the session key that marks this subscription's visitor as verified."""
    return f"subscription-verified:{subscription.tenant_id}:{subscription.id}"


def verified_until(session_value: Any) -> dt.datetime | None:
    """Read the verification deadline stored in the session."""
    try:
        return dt.datetime.fromisoformat(str(session_value))
    except ValueError:
        return None


def is_verified(session: Any, subscription: Subscription) -> bool:
    """Tell whether this browser proved it is the customer, recently enough."""
    until = verified_until(session.get(verified_key(subscription), ""))
    return until is not None and until > utcnow()


def mark_verified(session: Any, subscription: Subscription) -> None:
    """Remember in the session that this browser is the customer for a while."""
    session[verified_key(subscription)] = (utcnow() + dt.timedelta(minutes=VERIFIED_MINUTES)).isoformat()


def when_text(subscription: Subscription, moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format a moment in the subscription's zone, naming the zone (for customers in other zones)."""
    if moment is None:
        return ""
    return f"{format_in_zone(moment, subscription.time_zone, fmt)} ({subscription.time_zone})"


def today_in_zone(subscription: Subscription) -> str:
    """Return today's date where the subscription lives."""
    return local_date(utcnow(), subscription.time_zone).isoformat()
