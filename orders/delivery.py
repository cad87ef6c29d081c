"""Delivery: the mail to the customer, the signed "my rights" (我的权益) link, reveals and resends.

The mail names the tenant, the bundle and how to use each right, and links to "my rights"; it never holds
a card key or code in full. The link is signed with the app's SECRET_KEY (itsdangerous) and expires; it
names the tenant and the customer, and is resolved outside the tenant URL space.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update

from catalog.models import Right
from orders.allocation import reveal_grant_secret
from orders.customers import surviving
from orders.events import OrderError, actor_label
from orders.models import Customer, Delivery, Grant, Order, OrderLine
from orders.risk.rules import announce, flag_payload, note_reveal
from saas import outbox, shortlinks, sms
from saas.extensions import db, immediate_transaction
from saas.links import public_url
from saas.outbox import Outgoing
from saas.timeutil import utcnow
from tenants import audit
from tenants.models import Tenant
from tenants.outbox import send_after_commit
from tenants.scoping import current_tenant_id

TOKEN_SALT = "quanyi.my-rights"
DEFAULT_LINK_DAYS = 90
VISIBLE_GRANT_STATUSES = ("backordered", "processing", "delivered", "redeemed", "revoked", "failed")
KIND_INSTRUCTIONS = {
    "card_key": _l("Open “my rights”, reveal the card number and secret, and enter them at the provider."),
    "code": _l("Open “my rights”, reveal the code, and enter it in the provider's app or website."),
    "topup": _l("The membership is topped up directly to your account; nothing to enter."),
    "link": _l("Open “my rights” and follow the link to claim it."),
}


class LinkInvalid(ValueError):
    """A "my rights" link that is tampered with, expired, or names nothing that exists."""


# ---------------------------------------------------------------- the signed link


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def link_max_age() -> int:
    """Return how long a "my rights" link stays valid, in seconds."""
    return int(current_app.config.get("MY_RIGHTS_LINK_MAX_AGE", DEFAULT_LINK_DAYS * 86400))


def my_rights_token(tenant_id: int, customer_id: int) -> str:
    """Sign a link token naming a tenant's customer."""
    return _serializer().dumps({"t": str(tenant_id), "c": str(customer_id)})


def my_rights_url(tenant_id: int, customer_id: int) -> str:
    """Return the customer's "my rights" address on PUBLIC_BASE_URL (signed now: build it at send time)."""
    return public_url("my_rights.page", token=my_rights_token(tenant_id, customer_id))


outbox.register_link(
    "my_rights", lambda tenant_id, customer_id: my_rights_url(int(tenant_id), int(customer_id))
)


def read_token(token: str) -> tuple[int, int]:
    """Return (tenant id, customer id) from a token; LinkInvalid when tampered with or expired."""
    try:
        data: Any = _serializer().loads(token, max_age=link_max_age())
    except SignatureExpired as error:
        raise LinkInvalid("expired") from error
    except BadSignature as error:
        raise LinkInvalid("invalid") from error
    try:
        return int(data["t"]), int(data["c"])
    except (KeyError, TypeError, ValueError) as error:
        raise LinkInvalid("invalid") from error


# ---------------------------------------------------------------- "my rights"


@dataclass
class RightView:
    """One grant as the customer sees it on "my rights"."""

    grant: Grant
    instructions: str
    bundle_name: str
    order_external_id: str

    @property
    def can_reveal(self) -> bool:
        return self.grant.status in ("delivered", "redeemed") and self.grant.kind != "topup"

    @property
    def can_redeem(self) -> bool:
        return self.grant.status == "delivered"


def instructions_for(right_id: int, kind: str) -> str:
    """Return how to use a right: the right's own description, else the kind's general instructions."""
    right = db.session.get(Right, (current_tenant_id(), right_id))
    if right is not None and right.description.strip():
        return right.description.strip()
    return str(KIND_INSTRUCTIONS.get(kind, ""))


def customer_rights(customer: Customer) -> list[RightView]:
    """Return the customer's grants worth showing, newest order first, with how to use each."""
    rows = db.session.execute(
        select(Grant, OrderLine, Order)
        .join(OrderLine, (OrderLine.tenant_id == Grant.tenant_id) & (OrderLine.id == Grant.order_line_id))
        .join(Order, (Order.tenant_id == Grant.tenant_id) & (Order.id == Grant.order_id))
        .where(Grant.customer_id == customer.id, Grant.status.in_(VISIBLE_GRANT_STATUSES))
        .order_by(Order.id.desc(), Grant.order_line_id, Grant.unit_index, Grant.item_index)
    ).all()
    return [
        RightView(
            grant,
            instructions_for(grant.right_id, grant.kind),
            str(line.snapshot.get("bundle", {}).get("name", line.title)),
            order.external_id,
        )
        for grant, line, order in rows
    ]


def customer_grant(customer: Customer, grant_id: int) -> Grant | None:
    """Return one of the customer's grants, or None (another customer's grant is not theirs)."""
    grant = db.session.get(Grant, (customer.tenant_id, grant_id))
    if grant is None or grant.customer_id != customer.id:
        return None
    return grant


def reveal(grant: Grant, *, by: str, ip: str | None = None) -> str:
    """Return a delivered grant's secret in full and audit who saw it (risk control notes from where)."""
    if grant.status not in ("delivered", "redeemed"):
        raise OrderError(_("This right cannot be shown."))
    value = reveal_grant_secret(grant)
    with immediate_transaction(db.session()):
        db.session.execute(
            update(Grant)
            .where(Grant.id == grant.id, Grant.first_revealed_at.is_(None))
            .values(first_revealed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        audit.record("grant.revealed", "grant", grant.id, actor=by, order_id=str(grant.order_id))
        flagged = [flag_payload(f) for f in note_reveal(grant.id, grant.order_id, ip)]
        db.session.commit()
    announce(grant.tenant_id, flagged)
    return value


def resolve_customer(tenant_id: int, customer_id: int) -> Customer | None:
    """Inside the bound tenant: return the customer a link names, following merges."""
    customer = db.session.get(Customer, (tenant_id, customer_id))
    return surviving(customer) if customer is not None else None


# ---------------------------------------------------------------- the delivery mail


def delivery_record(
    order: Order,
    customer: Customer | None,
    grant_count: int,
    *,
    kind: str,
    actor: str,
    note: str = "",
    tenant: Tenant | None = None,
) -> Delivery:
    """Return a new delivery message for the order's log, not yet added (sent after the commit).

    The channel follows `saas.sms.channel_for`: a phone-only customer gets an SMS, an email-only one a mail,
    one with both the tenant's choice. A caller writing many passes the `tenant` it has read once.
    """
    tenant = tenant or db.session.get(Tenant, order.tenant_id)
    channel = (
        sms.channel_for(tenant.settings if tenant else None, "delivery", customer.email, customer.phone)
        if customer is not None
        else None
    )
    method, recipient = ("email" if channel[0] == "mail" else "sms", channel[1]) if channel else ("page", "")
    return Delivery(
        order_id=order.id,
        kind=kind,
        method=method,
        recipient=recipient,
        status="queued" if recipient else "skipped",
        grant_count=grant_count,
        actor=actor,
        note=note or ("" if recipient else "no email address or SMS: share the customer's link"),
    )


def queue_delivery(
    order: Order,
    customer: Customer | None,
    grant_count: int,
    *,
    kind: str,
    actor: str,
    note: str = "",
) -> int | None:
    """Record a delivery message in the session (sent after the commit by `send_delivery`)."""
    delivery = delivery_record(order, customer, grant_count, kind=kind, actor=actor, note=note)
    db.session.add(delivery)
    recipient = delivery.recipient
    if kind == "resend":
        audit.record("order.delivery_resent", "order", order.id, recipient=recipient, reason=note or None)
    else:
        audit.record(
            "order.delivered", "order", order.id, actor=actor, recipient=recipient, grants=grant_count
        )
    return delivery.id if recipient else None


@dataclass
class DeliveryMail:
    """What a delivery mail says, taken from the order, its lines and its delivered grants."""

    recipient: str
    customer_id: int
    order_external_id: str
    bundles: list[str]
    rights: list[tuple[int, str, str, dt.datetime | None]]  # right id, kind, name, valid until
    resend: bool = False


def delivery_mail(
    order: Order, lines: list[OrderLine], grants: list[Grant], recipient: str, *, resend: bool = False
) -> DeliveryMail:
    """Gather a delivery mail from the order's lines and grants (the delivered ones are listed, in order)."""
    delivered = sorted(
        (g for g in grants if g.status in ("delivered", "redeemed")),
        key=lambda g: (g.order_line_id, g.unit_index, g.item_index),
    )
    return DeliveryMail(
        recipient,
        order.customer_id or 0,
        order.external_id,
        sorted({str(line.snapshot.get("bundle", {}).get("name", line.title)) for line in lines}),
        [(g.right_id, g.kind, g.right_name, g.valid_until) for g in delivered],
        resend,
    )


def _mail_rights(mail: DeliveryMail) -> list[dict[str, str]]:
    """List the mail's rights with how to use each (each right's description is read with one query)."""
    wanted = {right_id for right_id, *_ in mail.rights}
    described = {
        right_id: description
        for right_id, description in db.session.execute(
            select(Right.id, Right.description).where(Right.id.in_(wanted))
        )
    }
    return [
        {
            "name": name,
            "instructions": (described.get(right_id) or "").strip() or str(KIND_INSTRUCTIONS.get(kind, "")),
            "valid_until": valid_until.strftime("%Y-%m-%d") if valid_until else "",
        }
        for right_id, kind, name, valid_until in mail.rights
    ]


def compose_delivery(delivery: Delivery) -> Outgoing | None:
    """Compose a delivery record's mail now, with a freshly signed link (None: nothing to send)."""
    tenant_id = current_tenant_id()
    if not delivery.recipient:
        return None
    order = db.session.get(Order, (tenant_id, delivery.order_id))
    if order is None or order.customer_id is None:
        return None
    lines = list(db.session.scalars(select(OrderLine).where(OrderLine.order_id == order.id)))
    grants = list(
        db.session.scalars(
            select(Grant).where(Grant.order_id == order.id, Grant.status.in_(("delivered", "redeemed")))
        )
    )
    mail = delivery_mail(order, lines, grants, delivery.recipient, resend=delivery.kind == "resend")
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        return None
    if delivery.method == "sms":
        return _delivery_sms(delivery, tenant, mail)
    context = {
        "tenant": tenant,
        "order": {"external_id": mail.order_external_id},
        "bundles": mail.bundles,
        "rights": _mail_rights(mail),
        "link": my_rights_url(tenant_id, mail.customer_id),
        "resend": mail.resend,
    }
    with force_locale(tenant.locale or "zh_CN"):
        subject = _(
            "%(shop)s: your rights for order %(order)s", shop=tenant.name, order=mail.order_external_id
        )
        text = render_template("orders/mail/delivery.txt", **context)
    return Outgoing(
        "mail", [mail.recipient], subject, text, outbox.message_id_of("delivery", tenant_id, delivery.id)
    )


def _delivery_sms(delivery: Delivery, tenant: Tenant, mail: DeliveryMail) -> Outgoing:
    """Compose a delivery SMS: the shop, the order and a short link to "my rights" (70 characters bill)."""
    link = shortlinks.short_url(
        "my_rights", [tenant.id, mail.customer_id], max_age=link_max_age(), tenant_id=tenant.id
    )
    return sms.outgoing_sms(
        tenant.settings,
        tenant.locale,
        "backorder_filled" if delivery.kind == "backorder" else "delivery",
        delivery.recipient,
        {"shop": tenant.name, "order": mail.order_external_id, "link": link},
        outbox.message_id_of("delivery", tenant.id, delivery.id),
    )


outbox.register_kind(outbox.OutboxKind("delivery", Delivery, compose_delivery))


def send_deliveries(delivery_ids: list[int]) -> None:
    """After the commit that recorded them: send these deliveries in one job (the sweep repairs a loss)."""
    send_after_commit([int(i) for i in delivery_ids if i], "delivery")


def send_delivery(delivery_id: int) -> None:
    """After the commit that recorded it: send one delivery."""
    send_deliveries([delivery_id])


def resend_delivery(order: Order, *, reason: str = "", actor: str | None = None) -> Delivery:
    """Send the delivery mail again (support), and log it on the order."""
    customer = db.session.get(Customer, (order.tenant_id, order.customer_id)) if order.customer_id else None
    count = (
        db.session.scalar(
            select(func.count()).where(
                Grant.order_id == order.id, Grant.status.in_(("delivered", "redeemed"))
            )
        )
        or 0
    )
    if not count:
        raise OrderError(_("Nothing has been delivered for this order yet."))
    tenant = db.session.get(Tenant, order.tenant_id)
    settings = tenant.settings if tenant else None
    if customer is None or sms.channel_for(settings, "delivery", customer.email, customer.phone) is None:
        raise OrderError(_("The customer has no email address."))
    order_id, tenant_id, label = order.id, order.tenant_id, actor_label(actor)
    with immediate_transaction(db.session()):
        order = db.session.get(Order, (tenant_id, order_id)) or order
        delivery_id = queue_delivery(order, customer, int(count), kind="resend", actor=label, note=reason)
        db.session.commit()
    assert delivery_id is not None
    send_delivery(delivery_id)
    delivery = db.session.get(Delivery, (tenant_id, delivery_id), populate_existing=True)
    assert delivery is not None
    return delivery


def deliveries_of(order_id: int) -> list[Delivery]:
    """Return an order's delivery log, oldest first."""
    return list(
        db.session.scalars(
            select(Delivery).where(Delivery.order_id == order_id).order_by(Delivery.created_at, Delivery.id)
        )
    )


def link_expiry_from(now: dt.datetime) -> dt.datetime:
    """Return when a link signed now stops working (shown to support)."""
    return now + dt.timedelta(seconds=link_max_age())
