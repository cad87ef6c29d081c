"""Sign in to the portal (我的权益) with a phone or an email address and a one-time code.

A code is six digits, valid `CODE_MINUTES`, `CODE_ATTEMPTS` tries, used once; only an HMAC of it is stored
(`PortalCode`). It goes by SMS to a phone and by mail to an email, through the tenant's outbox. Asking for
codes is limited per address (`SMS_CODE_PER_MINUTE`, `SMS_CODE_PER_DAY`) and per IP address
(`PORTAL_CODE_PER_IP_MINUTE`, `PORTAL_CODE_PER_IP_DAY`). An address nobody bought with gets the same answer
as a known one and no message, so the form tells nobody who is a customer.

Signing in puts `{customer id, until, how}` in the Flask session under a key naming the tenant: it is not
the back office's Flask-Login user, and a session of one shop means nothing in another.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from orders.customers import find_customer, normalise_email
from orders.models import Customer
from orders.portal.models import PortalCode
from saas import sms
from saas.extensions import db, immediate_transaction
from saas.phones import phone_or_none
from saas.timeutil import utcnow
from tenants import audit
from tenants.models import Tenant
from tenants.outbox import SmsCodeLimited, add_mail, add_sms, send_after_commit
from tenants.scoping import current_tenant_id

CODE_MINUTES = 10
CODE_ATTEMPTS = 5
SESSION_HOURS = 12
CODE_ACTOR = "customer (portal)"
CODE_KIND = "verification_code"


class SignInRefused(ValueError):
    """A code request or a code that is refused (the message says why, in the customer's words)."""


@dataclass(frozen=True)
class Address:
    """Where a code goes: an E.164 phone (SMS) or a lower-cased email (mail)."""

    value: str
    transport: str  # sms or mail

    @property
    def masked(self) -> str:
        """Show enough to recognise it: 138****5678, l***@example.com."""
        if self.transport == "sms":
            return f"{self.value[:-8]}****{self.value[-4:]}"
        name, _sep, domain = self.value.partition("@")
        return f"{name[:1]}***@{domain}"


def read_address(text: str) -> Address:
    """Read what the customer typed as an email or a phone number; SignInRefused when it is neither."""
    value = (text or "").strip()
    if "@" in value:
        email = normalise_email(value)
        if email and "." in email.partition("@")[2]:
            return Address(email, "mail")
    else:
        phone = phone_or_none(value)
        if phone:
            return Address(phone, "sms")
    raise SignInRefused(_("Enter your mobile number or your email address."))


def _customer_at(address: Address) -> Customer | None:
    if address.transport == "sms":
        return find_customer(phone=address.value)
    return find_customer(email=address.value)


def _code_hash(code_id: int, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"portal:{code_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _count_since(column: Any, value: str, since: dt.datetime) -> int:
    return int(
        db.session.scalar(
            select(func.count()).select_from(PortalCode).where(column == value, PortalCode.created_at > since)
        )
        or 0
    )


def _check_limits(address: Address, ip: str, now: dt.datetime) -> None:
    config = current_app.config
    minute, day = now - dt.timedelta(minutes=1), now - dt.timedelta(days=1)
    if _count_since(PortalCode.address, address.value, minute) >= int(config["SMS_CODE_PER_MINUTE"]):
        raise SignInRefused(_("A code was sent less than a minute ago: please wait before asking again."))
    if _count_since(PortalCode.address, address.value, day) >= int(config["SMS_CODE_PER_DAY"]):
        raise SignInRefused(_("Too many codes for this number or address today: try again tomorrow."))
    if ip and (
        _count_since(PortalCode.ip, ip, minute) >= int(config["PORTAL_CODE_PER_IP_MINUTE"])
        or _count_since(PortalCode.ip, ip, day) >= int(config["PORTAL_CODE_PER_IP_DAY"])
    ):
        raise SignInRefused(_("Too many codes were asked for from your network: try again later."))


def send_code(text: str, *, ip: str | None) -> Address:
    """Send a sign-in code to the phone or email typed (when it is a customer's); return the address.

    The request is recorded even for an unknown address, so the limits count it too.
    """
    address = read_address(text)
    tenant = db.session.get(Tenant, current_tenant_id())
    if address.transport == "sms" and not sms.sms_available(tenant.settings if tenant else None, CODE_KIND):
        raise SignInRefused(_("This shop sends no text messages yet: sign in with your email address."))
    now = utcnow()
    with immediate_transaction(db.session()):
        _check_limits(address, ip or "", now)
        code = f"{secrets.randbelow(10**6):06d}"
        row = PortalCode(
            address=address.value,
            transport=address.transport,
            code_hash="",
            ip=(ip or "")[:45],
            created_at=now,
            expires_at=now + dt.timedelta(minutes=CODE_MINUTES),
        )
        row.code_hash = _code_hash(row.id, code)
        db.session.add(row)
        customer = _customer_at(address)
        try:
            record_id = _add_code_message(address, code) if customer is not None else None
        except SmsCodeLimited as error:  # a code to this phone just went out (a subscription's, say)
            db.session.rollback()
            raise SignInRefused(
                _("A code was sent less than a minute ago: please wait before asking again.")
            ) from error
        if customer is not None:
            audit.record(
                "portal.code_sent", "customer", customer.id, actor=CODE_ACTOR, sent_to=address.masked
            )
        db.session.commit()
    if record_id is not None:
        send_after_commit([record_id])
    return address


def _add_code_message(address: Address, code: str) -> int:
    if address.transport == "sms":
        return int(
            add_sms(address.value, "verification_code", {"code": code, "minutes": str(CODE_MINUTES)}).id
        )
    tenant = db.session.get(Tenant, current_tenant_id())
    with force_locale((tenant.locale if tenant else None) or "zh_CN"):
        subject = _("%(shop)s: your sign-in code", shop=tenant.name if tenant else "Quanyi")
        body = render_template("orders/mail/portal_code.txt", code=code, minutes=CODE_MINUTES, tenant=tenant)
    return int(add_mail(address.value, subject, body, kind="verification_code").id)


def check_code(text: str, code: str) -> Customer:
    """Accept the latest code sent to this address once; count a wrong try otherwise. Commits.

    Returns the customer signed in; SignInRefused says why not (wrong, expired, used up).
    """
    address = read_address(text)
    now = utcnow()
    with immediate_transaction(db.session()):
        row = db.session.scalar(
            select(PortalCode)
            .where(PortalCode.address == address.value)
            .order_by(PortalCode.created_at.desc(), PortalCode.id.desc())
            .limit(1)
        )
        if row is None or row.used_at is not None:
            raise SignInRefused(_("Ask for a code first."))
        if _aware(row.expires_at) <= now:
            raise SignInRefused(_("This code has expired: ask for a new one."))
        if row.attempts >= CODE_ATTEMPTS:
            raise SignInRefused(_("Too many wrong codes: ask for a new one."))
        customer = _customer_at(address)
        if customer is None or not hmac.compare_digest(row.code_hash, _code_hash(row.id, code.strip())):
            row.attempts += 1
            db.session.commit()
            left = CODE_ATTEMPTS - row.attempts
            raise SignInRefused(
                _("That code is not right (%(n)s attempts left).", n=left)
                if left
                else _("Too many wrong codes: ask for a new one.")
            )
        row.used_at = now
        audit.record("portal.signed_in", "customer", customer.id, actor=CODE_ACTOR, by="code")
        db.session.commit()
    return customer


# ---------------------------------------------------------------- the customer session


def session_key(tenant_id: int) -> str:
    """Return the session key holding the customer signed in to this tenant's portal."""
    return f"portal:{tenant_id}"


def sign_in(session: Any, customer: Customer, *, how: str) -> None:
    """Remember in the session that this browser is `customer` of its tenant (`how`: code or link).

    A link opened by a customer already signed in by code keeps the stronger sign-in.
    """
    current = signed_in(session, customer.tenant_id)
    if how == "link" and current == (customer.id, "code"):
        return
    until = utcnow() + dt.timedelta(hours=SESSION_HOURS)
    session[session_key(customer.tenant_id)] = {"c": str(customer.id), "until": until.isoformat(), "how": how}


def sign_out(session: Any, tenant_id: int) -> None:
    """Forget the portal customer of this tenant."""
    session.pop(session_key(tenant_id), None)


def signed_in(session: Any, tenant_id: int) -> tuple[int, str] | None:
    """Return (customer id, how) signed in to this tenant's portal, or None (absent or lapsed)."""
    value = session.get(session_key(tenant_id))
    if not isinstance(value, dict):
        return None
    try:
        until = dt.datetime.fromisoformat(str(value["until"]))
        customer_id = int(value["c"])
    except (KeyError, TypeError, ValueError):
        return None
    if until <= utcnow():
        return None
    return customer_id, str(value.get("how") or "link")
