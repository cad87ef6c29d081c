"""Customers: find or create them from what a channel or a person tells us, edit, and merge two records."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from orders.bulk import write_new_objects
from orders.events import OrderError
from orders.models import Customer, CustomerExternalId, Grant, Order
from saas.extensions import db, immediate_transaction
from saas.phones import phone_or_none
from saas.timeutil import utcnow
from tenants import audit

_PHONE_NOISE = re.compile(r"[\s\-().]")


def normalise_email(email: str | None) -> str | None:
    """Return the email trimmed and lower-cased, or None when blank."""
    value = (email or "").strip().lower()
    return value or None


def normalise_phone(phone: str | None) -> str | None:
    """Return the phone number in E.164 (`saas.phones`), else without spaces or dashes; None when blank.

    A number `saas.phones` cannot read is kept (a channel's odd value still matches the same customer),
    and is never texted: the channel choice validates it again.
    """
    value = _PHONE_NOISE.sub("", phone or "")
    return phone_or_none(value) or value or None


def surviving(customer: Customer) -> Customer:
    """Follow merges to the record that survived."""
    seen = {customer.id}
    while customer.merged_into_id is not None:
        nxt = db.session.get(Customer, (customer.tenant_id, customer.merged_into_id))
        if nxt is None or nxt.id in seen:
            break
        seen.add(nxt.id)
        customer = nxt
    return customer


def _by_channel_id(channel: str, external_id: str) -> Customer | None:
    # The channel id's unique key first, then the customer by primary key: a plan that stays right on
    # tables whose statistics lag behind a flash sale (a join was planned as a loop over every customer).
    customer_id = (
        select(CustomerExternalId.customer_id)
        .where(CustomerExternalId.channel == channel, CustomerExternalId.external_id == external_id)
        .scalar_subquery()
    )
    return db.session.scalar(select(Customer).where(Customer.id == customer_id))


def _by_contact(email: str | None, phone: str | None) -> Customer | None:
    """Return the customer with this email, else with this phone (unmerged first, then oldest): one query."""
    wanted = [Customer.email == email] if email else []
    wanted += [Customer.phone == phone] if phone else []
    if not wanted:
        return None
    candidates = list(
        db.session.scalars(
            select(Customer).where(or_(*wanted)).order_by(Customer.merged_into_id.is_not(None), Customer.id)
        )
    )
    by_email = [c for c in candidates if email and c.email == email]
    by_phone = [c for c in candidates if phone and c.phone == phone]
    found = by_email or by_phone
    return found[0] if found else None


def find_customer(
    email: str | None = None,
    phone: str | None = None,
    channel: str | None = None,
    external_id: str | None = None,
) -> Customer | None:
    """Find a customer by channel id, then email, then phone (following merges)."""
    found = _by_channel_id(channel, external_id) if channel and external_id else None
    found = found or _by_contact(normalise_email(email), normalise_phone(phone))
    return surviving(found) if found is not None else None


def find_or_add_customer(
    email: str | None = None,
    phone: str | None = None,
    name: str = "",
    channel: str | None = None,
    external_id: str | None = None,
) -> Customer:
    """Return the matching customer or add a new one to the session (the caller commits).

    A new customer and a new channel id are written at once: risk checks of the order read them. When two
    orders of a new channel customer are processed at the same moment, the second to write finds the
    first's channel id taken and uses that customer.
    """
    email, phone = normalise_email(email), normalise_phone(phone)
    if not email and not phone and not external_id:
        raise OrderError(_("A customer needs an email address, a phone number or a channel id."))
    known = _by_channel_id(channel, external_id) if channel and external_id else None
    found = known or _by_contact(email, phone)
    customer = surviving(found) if found is not None else None
    if customer is not None:
        customer.email = customer.email or email
        customer.phone = customer.phone or phone
        customer.name = customer.name or name.strip()[:120]
    if known is not None or not (channel and external_id):
        if customer is None:
            customer = Customer(email=email, phone=phone, name=name.strip()[:120])
            db.session.add(customer)
        db.session.flush()
        return customer
    try:
        with db.session.begin_nested():
            if customer is None:
                customer = Customer(email=email, phone=phone, name=name.strip()[:120])
                db.session.add(customer)
            db.session.add(
                CustomerExternalId(customer_id=customer.id, channel=channel, external_id=external_id)
            )
    except IntegrityError:  # another order of this customer added the channel id first
        winner = _by_channel_id(channel, external_id)
        if winner is None:
            raise
        return surviving(winner)
    return customer


@dataclass(frozen=True)
class Buyer:
    """Who bought one order of a batch, as the channel told us."""

    email: str | None = None
    phone: str | None = None
    name: str = ""
    channel: str | None = None
    external_id: str | None = None


@dataclass
class FoundCustomers:
    """The batch's customers, one per buyer in order, and every channel id each has (for the blocklist)."""

    customers: list[Customer]
    external_ids: dict[int, list[str]] = field(default_factory=dict)


def find_or_add_customers(buyers: list[Buyer]) -> FoundCustomers:
    """Find or add the customers of a batch of orders with a few statements, as one by one would.

    Channel ids, then emails, then phones are looked up once for the whole batch; a buyer who appears twice
    (a customer's burst of orders) is one customer. New customers and channel ids are added to the session
    and flushed together. A channel id taken by a concurrent transaction makes the flush fail: the caller's
    batch then falls back to one order at a time (`find_or_add_customer`).
    """
    wanted = [
        Buyer(normalise_email(b.email), normalise_phone(b.phone), b.name, b.channel, b.external_id)
        for b in buyers
    ]
    for buyer in wanted:
        if not buyer.email and not buyer.phone and not buyer.external_id:
            raise OrderError(_("A customer needs an email address, a phone number or a channel id."))
    pairs = {(b.channel, b.external_id) for b in wanted if b.channel and b.external_id}
    by_channel: dict[tuple[str, str], Customer] = {}
    if pairs:
        rows = db.session.execute(
            select(CustomerExternalId.channel, CustomerExternalId.external_id, Customer)
            .join(
                Customer,
                (Customer.tenant_id == CustomerExternalId.tenant_id)
                & (Customer.id == CustomerExternalId.customer_id),
            )
            .where(tuple_(CustomerExternalId.channel, CustomerExternalId.external_id).in_(sorted(pairs)))
        )
        by_channel = {(channel, external_id): customer for channel, external_id, customer in rows}
    emails = sorted({b.email for b in wanted if b.email})
    phones = sorted({b.phone for b in wanted if b.phone})
    by_email: dict[str, Customer] = {}
    by_phone: dict[str, Customer] = {}
    if emails or phones:
        contacts = ([Customer.email.in_(emails)] if emails else []) + (
            [Customer.phone.in_(phones)] if phones else []
        )
        for candidate in db.session.scalars(
            select(Customer).where(or_(*contacts)).order_by(Customer.merged_into_id.is_not(None), Customer.id)
        ):
            if candidate.email:
                by_email.setdefault(candidate.email, candidate)
            if candidate.phone:
                by_phone.setdefault(candidate.phone, candidate)
    known_ids = {c.id for c in by_channel.values()} | {c.id for c in by_email.values()}
    known_ids |= {c.id for c in by_phone.values()}
    external_ids: dict[int, list[str]] = {}
    if known_ids:
        for customer_id, external_id in db.session.execute(
            select(CustomerExternalId.customer_id, CustomerExternalId.external_id).where(
                CustomerExternalId.customer_id.in_(sorted(known_ids))
            )
        ):
            external_ids.setdefault(customer_id, []).append(external_id)
    found = []
    for buyer in wanted:
        pair: tuple[str, str] | None = (
            (buyer.channel, buyer.external_id) if buyer.channel and buyer.external_id else None
        )
        known = by_channel.get(pair) if pair else None
        match: Customer | None = known or (by_email.get(buyer.email) if buyer.email else None)
        match = match or (by_phone.get(buyer.phone) if buyer.phone else None)
        customer = surviving(match) if match is not None else None
        if customer is None:
            customer = Customer(email=buyer.email, phone=buyer.phone, name=buyer.name.strip()[:120])
            db.session.add(customer)
            external_ids[customer.id] = []
        else:
            customer.email = customer.email or buyer.email
            customer.phone = customer.phone or buyer.phone
            customer.name = customer.name or buyer.name.strip()[:120]
        if pair is not None and known is None:
            db.session.add(CustomerExternalId(customer_id=customer.id, channel=pair[0], external_id=pair[1]))
            by_channel[pair] = customer
            external_ids.setdefault(customer.id, []).append(pair[1])
        if buyer.email:
            by_email.setdefault(buyer.email, customer)
        if buyer.phone:
            by_phone.setdefault(buyer.phone, customer)
        found.append(customer)
    write_new_objects()
    return FoundCustomers(found, external_ids)


def update_customer(
    customer: Customer, *, name: str, email: str | None, phone: str | None, notes: str
) -> None:
    """Edit a customer's contact details and notes."""
    email, phone = normalise_email(email), normalise_phone(phone)
    if not email and not phone:
        raise OrderError(_("A customer needs an email address or a phone number."))
    with immediate_transaction(db.session()):
        customer.name = name.strip()[:120]
        customer.email, customer.phone, customer.notes = email, phone, notes.strip()
        audit.record("customer.updated", "customer", customer.id)
        db.session.commit()


def merge_customers(keep: Customer, duplicate: Customer, reason: str = "") -> None:
    """Merge `duplicate` into `keep`: its orders, grants and channel ids move; it points at `keep`."""
    if keep.id == duplicate.id:
        raise OrderError(_("A customer cannot be merged into itself."))
    if duplicate.merged_into_id is not None or keep.merged_into_id is not None:
        raise OrderError(_("That customer was already merged into another one."))
    with immediate_transaction(db.session()):
        _merge_locked(keep, duplicate, reason)
        db.session.commit()


def _merge_locked(keep: Customer, duplicate: Customer, reason: str) -> None:
    moved = {}
    for model in (Order, Grant, CustomerExternalId):
        result = db.session.execute(
            update(model)
            .where(model.customer_id == duplicate.id)
            .values(customer_id=keep.id)
            .execution_options(synchronize_session=False)
        )
        moved[model.__tablename__] = result.rowcount  # type: ignore[attr-defined]
    keep.email = keep.email or duplicate.email
    keep.phone = keep.phone or duplicate.phone
    keep.name = keep.name or duplicate.name
    if duplicate.notes:
        keep.notes = (keep.notes + "\n" + duplicate.notes).strip()
    duplicate.merged_into_id = keep.id
    duplicate.updated_at = utcnow()
    audit.record("customer.merged", "customer", keep.id, reason=reason, merged_id=str(duplicate.id), **moved)
    db.session.commit()


def search_customers(query: str, *, include_merged: bool = False) -> list[Customer]:
    """Return customers whose name, email or phone contains `query` (newest first, at most 200)."""
    statement = select(Customer)
    if not include_merged:
        statement = statement.where(Customer.merged_into_id.is_(None))
    query = query.strip()
    if query:
        pattern = f"%{query.lower()}%"
        statement = statement.where(
            or_(
                func.lower(Customer.name).like(pattern),
                Customer.email.like(pattern),
                Customer.phone.like(pattern),
            )
        )
    return list(db.session.scalars(statement.order_by(Customer.id.desc()).limit(200)))
