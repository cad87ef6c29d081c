"""亲情共享 family sharing: a buyer shares a plan's shareable rights with family members, by phone.

A plan allows it when its snapshot says `family_max_members` > 0 (catalog plan setting, default 3). What can
be shared: a link or a top-up can; a card key only when it is reusable (a shared account); a generated code
never (one use). A share is one purchase (an order line; for a subscription, its renewals too) and one
member. Access is computed live, so removing a member, refunding or cancelling the order, or the end of the
subscription ends the member's access at once. Adding and removing members is audited and limited per
purchase (`FAMILY_CHANGES_PER_PERIOD` changes in `FAMILY_CHANGE_PERIOD_DAYS`). A member marks a shared
right used for themself: a `redemptions` row naming them, the buyer's right unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import or_, select

from orders.customers import find_or_add_customer
from orders.models import Customer, Grant, Order, OrderLine, Redemption
from orders.portal.models import FamilyShare
from orders.subscriptions.models import Subscription, SubscriptionPeriod
from saas import sms
from saas.extensions import db, immediate_transaction
from saas.phones import PhoneInvalid, normalise_phone
from saas.timeutil import utcnow
from tenants import audit
from tenants.models import Tenant
from tenants.outbox import add_sms, send_after_commit

FAMILY_CHANGES_PER_PERIOD = 6  # adds and removals per purchase: fill a family of 3, swap a few, no more
FAMILY_CHANGE_PERIOD_DAYS = 30
ENDED_ORDER_STATUSES = ("refunded", "cancelled")
SHOWN_GRANT_STATUSES = ("delivered", "redeemed")


class FamilyRefused(ValueError):
    """A family change that is refused (the message says why)."""


# ---------------------------------------------------------------- what can be shared


def _right_snapshot(line: OrderLine, right_id: int) -> dict[str, Any]:
    for item in line.snapshot.get("bundle", {}).get("items", []):
        right = item.get("right") or {}
        if str(right.get("id")) == str(right_id):
            return dict(right)
    return {}


def is_shareable(grant: Grant, line: OrderLine) -> bool:
    """Tell whether a right can be shared: a link or top-up yes, a card key only if reusable, a code no."""
    if grant.kind in ("link", "topup"):
        return True
    if grant.kind == "card_key":
        return bool(_right_snapshot(line, grant.right_id).get("reusable"))
    return False


def family_limit(line: OrderLine) -> int:
    """Return how many members the plan sold on this line allows (0: no family sharing)."""
    return int(line.snapshot.get("plan", {}).get("family_max_members") or 0)


@dataclass
class Purchase:
    """A purchase of the buyer that allows family members, and its members now."""

    line: OrderLine
    order: Order
    subscription: Subscription | None
    limit: int
    members: list[FamilyShare]
    shareable_rights: list[str]
    live: bool

    @property
    def title(self) -> str:
        plan = self.line.snapshot.get("plan", {}).get("name", "")
        bundle = self.line.snapshot.get("bundle", {}).get("name", self.line.title)
        return f"{bundle} · {plan}" if plan else str(bundle)

    @property
    def can_add(self) -> bool:
        return self.live and len(self.members) < self.limit


def _renewal_line_ids(subscription_id: int) -> list[int]:
    line_ids = db.session.scalars(
        select(SubscriptionPeriod.order_line_id).where(SubscriptionPeriod.subscription_id == subscription_id)
    )
    return [int(line_id) for line_id in line_ids if line_id is not None]


def _subscription_of_line(line_id: int) -> Subscription | None:
    return db.session.scalar(select(Subscription).where(Subscription.order_line_id == line_id))


def _renewal_lines(customer: Customer) -> set[int]:
    """The customer's lines that pay a later period of a subscription (shared through its first line)."""
    rows = db.session.execute(
        select(SubscriptionPeriod.order_line_id, Subscription.order_line_id)
        .join(
            Subscription,
            (Subscription.tenant_id == SubscriptionPeriod.tenant_id)
            & (Subscription.id == SubscriptionPeriod.subscription_id),
        )
        .where(Subscription.customer_id == customer.id)
    ).all()
    return {int(period_line) for period_line, first_line in rows if period_line and period_line != first_line}


def is_live(order: Order, line: OrderLine, subscription: Subscription | None) -> bool:
    """Tell whether a shared purchase still gives access: not refunded or cancelled, subscription live."""
    if order.status in ENDED_ORDER_STATUSES or order.paid_at is None:
        return False
    if line.total and line.refunded_amount >= line.total:
        return False
    return subscription is None or subscription.is_live


def active_members(line_id: int) -> list[FamilyShare]:
    """Return the members a purchase is shared with now (removed ones left out), oldest first."""
    return list(
        db.session.scalars(
            select(FamilyShare)
            .where(FamilyShare.order_line_id == line_id, FamilyShare.removed_at.is_(None))
            .order_by(FamilyShare.added_at, FamilyShare.id)
        )
    )


def purchases_of(customer: Customer) -> list[Purchase]:
    """Return the customer's purchases whose plan allows family members, newest first (a few queries)."""
    rows = db.session.execute(
        select(OrderLine, Order)
        .join(Order, (Order.tenant_id == OrderLine.tenant_id) & (Order.id == OrderLine.order_id))
        .where(Order.customer_id == customer.id, Order.paid_at.is_not(None))
        .order_by(Order.id.desc(), OrderLine.position)
    ).all()
    renewals = _renewal_lines(customer)
    wanted = [(line, order) for line, order in rows if family_limit(line) > 0 and line.id not in renewals]
    if not wanted:
        return []
    line_ids = [line.id for line, _order in wanted]
    subscriptions = {
        s.order_line_id: s
        for s in db.session.scalars(select(Subscription).where(Subscription.order_line_id.in_(line_ids)))
    }
    members: dict[int, list[FamilyShare]] = {}
    for share in db.session.scalars(
        select(FamilyShare)
        .where(FamilyShare.order_line_id.in_(line_ids), FamilyShare.removed_at.is_(None))
        .order_by(FamilyShare.added_at, FamilyShare.id)
    ):
        members.setdefault(share.order_line_id, []).append(share)
    found = []
    for line, order in wanted:
        subscription = subscriptions.get(line.id)
        names = sorted(
            {
                str(item["right"].get("name"))
                for item in line.snapshot.get("bundle", {}).get("items", [])
                if _item_shareable(item.get("right") or {})
            }
        )
        found.append(
            Purchase(
                line,
                order,
                subscription,
                family_limit(line),
                members.get(line.id, []),
                names,
                is_live(order, line, subscription),
            )
        )
    return found


def _item_shareable(right: dict[str, Any]) -> bool:
    kind = right.get("kind")
    return kind in ("link", "topup") or (kind == "card_key" and bool(right.get("reusable")))


def _owned_line(owner: Customer, line_id: int) -> tuple[OrderLine, Order]:
    line = db.session.scalar(select(OrderLine).where(OrderLine.id == line_id))
    order = db.session.scalar(select(Order).where(Order.id == line.order_id)) if line is not None else None
    if line is None or order is None or order.customer_id != owner.id:
        raise LookupError(line_id)
    return line, order


def _changes_since(line_id: int, since: dt.datetime) -> int:
    shares = db.session.scalars(
        select(FamilyShare).where(
            FamilyShare.order_line_id == line_id,
            or_(FamilyShare.added_at > since, FamilyShare.removed_at > since),
        )
    )
    return sum(
        int(_aware(s.added_at) > since) + int(s.removed_at is not None and _aware(s.removed_at) > since)
        for s in shares
    )


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _check_change_allowed(line_id: int, now: dt.datetime) -> None:
    since = now - dt.timedelta(days=FAMILY_CHANGE_PERIOD_DAYS)
    if _changes_since(line_id, since) >= FAMILY_CHANGES_PER_PERIOD:
        raise FamilyRefused(
            _(
                "You changed your family members %(n)s times in the last %(days)s days: try again later.",
                n=FAMILY_CHANGES_PER_PERIOD,
                days=FAMILY_CHANGE_PERIOD_DAYS,
            )
        )


def add_member(owner: Customer, line_id: int, phone: str, *, actor: str) -> FamilyShare:
    """Share a purchase with the family member at `phone`, audit it, and text them a link. Commits.

    LookupError when the purchase is not the owner's; FamilyRefused when the plan, the limit or the number
    says no.
    """
    now = utcnow()
    with immediate_transaction(db.session()):
        line, order = _owned_line(owner, line_id)
        try:
            number = normalise_phone(phone)
        except PhoneInvalid as error:
            raise FamilyRefused(_("Enter your family member's mobile number.")) from error
        subscription = _subscription_of_line(line.id)
        limit = family_limit(line)
        if limit <= 0:
            raise FamilyRefused(_("This plan cannot be shared with family members."))
        if not is_live(order, line, subscription):
            raise FamilyRefused(_("This purchase has ended: it can no longer be shared."))
        if number == owner.phone:
            raise FamilyRefused(_("That is your own number."))
        members = active_members(line.id)
        if any(m.member_phone == number for m in members):
            raise FamilyRefused(_("This number is already a family member."))
        if len(members) >= limit:
            raise FamilyRefused(_("This plan is shared with %(n)s family members at most.", n=limit))
        _check_change_allowed(line.id, now)
        member = find_or_add_customer(phone=number)
        if member.id == owner.id:
            raise FamilyRefused(_("That is your own number."))
        share = FamilyShare(
            owner_customer_id=owner.id,
            member_customer_id=member.id,
            member_phone=number,
            order_line_id=line.id,
            subscription_id=subscription.id if subscription else None,
            plan_name=str(line.snapshot.get("plan", {}).get("name", line.title))[:240],
            added_at=now,
        )
        db.session.add(share)
        audit.record(
            "family.member_added",
            "customer",
            owner.id,
            actor=actor,
            member_id=str(member.id),
            order_line_id=str(line.id),
        )
        tenant = db.session.get(Tenant, owner.tenant_id)
        record_id = None
        if sms.sms_available(tenant.settings if tenant else None, "family_shared"):
            record = add_sms(
                number,
                "family_shared",
                {"shop": tenant.name if tenant else "", "plan": share.plan_name},
                link=("my_rights", [owner.tenant_id, member.id]),
                about=("customer", member.id),
            )
            record_id = int(record.id)
        db.session.commit()
    if record_id is not None:  # without SMS for this shop the member signs in with their number and a code
        send_after_commit([record_id])
    return share


def remove_member(owner: Customer, share_id: int, *, actor: str) -> FamilyShare:
    """End a member's access to a purchase now, and audit it. Commits. LookupError when not the owner's."""
    now = utcnow()
    with immediate_transaction(db.session()):
        share = db.session.get(FamilyShare, (owner.tenant_id, share_id))
        if share is None or share.owner_customer_id != owner.id or share.removed_at is not None:
            raise LookupError(share_id)
        _check_change_allowed(share.order_line_id, now)
        share.removed_at = now
        share.removed_by = actor[:200]
        audit.record(
            "family.member_removed",
            "customer",
            owner.id,
            actor=actor,
            member_id=str(share.member_customer_id),
            order_line_id=str(share.order_line_id),
        )
        db.session.commit()
    return share


# ---------------------------------------------------------------- what a member sees


@dataclass
class SharedRight:
    """A right shared with a member: the grant, who shared it, and whether the member used it."""

    grant: Grant
    share: FamilyShare
    owner_label: str
    used_at: dt.datetime | None

    @property
    def can_reveal(self) -> bool:
        return self.grant.kind != "topup"

    @property
    def can_redeem(self) -> bool:
        return self.used_at is None


def _share_line_ids(share: FamilyShare) -> list[int]:
    if share.subscription_id is None:
        return [share.order_line_id]
    return sorted({share.order_line_id, *_renewal_line_ids(share.subscription_id)})


def _live_share(share: FamilyShare) -> bool:
    line = db.session.scalar(select(OrderLine).where(OrderLine.id == share.order_line_id))
    order = db.session.scalar(select(Order).where(Order.id == line.order_id)) if line else None
    subscription = (
        db.session.scalar(select(Subscription).where(Subscription.id == share.subscription_id))
        if share.subscription_id
        else None
    )
    return line is not None and order is not None and is_live(order, line, subscription)


def shared_rights(member: Customer) -> list[SharedRight]:
    """Return every right shared with this customer now: live shares, shareable delivered grants."""
    shares = db.session.scalars(
        select(FamilyShare).where(
            FamilyShare.member_customer_id == member.id, FamilyShare.removed_at.is_(None)
        )
    )
    found: list[SharedRight] = []
    for share in shares:
        if not _live_share(share):
            continue
        owner = db.session.get(Customer, (share.tenant_id, share.owner_customer_id))
        owner_label = (owner.name or _mask_phone(owner.phone) or "") if owner else ""
        rows = db.session.execute(
            select(Grant, OrderLine)
            .join(OrderLine, (OrderLine.tenant_id == Grant.tenant_id) & (OrderLine.id == Grant.order_line_id))
            .where(Grant.order_line_id.in_(_share_line_ids(share)), Grant.status.in_(SHOWN_GRANT_STATUSES))
            .order_by(Grant.order_id.desc(), Grant.unit_index, Grant.item_index)
        ).all()
        for grant, line in rows:
            if is_shareable(grant, line):
                found.append(SharedRight(grant, share, owner_label, member_used_at(grant.id, member.id)))
    return found


def _mask_phone(phone: str | None) -> str:
    return f"{phone[:-8]}****{phone[-4:]}" if phone and len(phone) > 8 else (phone or "")


def shared_grant(member: Customer, grant_id: int) -> SharedRight | None:
    """Return one right shared with this member now, or None (not shared, removed, or ended)."""
    for right in shared_rights(member):
        if right.grant.id == grant_id:
            return right
    return None


def member_used_at(grant_id: int, member_id: int) -> dt.datetime | None:
    """Return when this member marked a shared right used, or None."""
    return db.session.scalar(
        select(Redemption.at)
        .where(
            Redemption.grant_id == grant_id,
            Redemption.member_customer_id == member_id,
            Redemption.outcome == "redeemed",
        )
        .limit(1)
    )


def redeem_as_member(right: SharedRight, member: Customer, *, actor: str) -> bool:
    """Record that a family member used a shared right (once per member); the buyer's right is unchanged."""
    with immediate_transaction(db.session()):
        if member_used_at(right.grant.id, member.id) is not None:
            return False
        db.session.add(
            Redemption(
                grant_id=right.grant.id,
                source="customer",
                outcome="redeemed",
                code_mask=right.grant.mask,
                actor=actor[:200],
                member_customer_id=member.id,
            )
        )
        audit.record(
            "grant.redeemed_by_member",
            "grant",
            right.grant.id,
            actor=actor,
            member_id=str(member.id),
            order_id=str(right.grant.order_id),
        )
        db.session.commit()
    return True


def sharing_of(owner: Customer) -> dict[int, list[FamilyShare]]:
    """Return, per order line of the owner, the members it is shared with now (for "my rights")."""
    shares = db.session.scalars(
        select(FamilyShare).where(FamilyShare.owner_customer_id == owner.id, FamilyShare.removed_at.is_(None))
    )
    found: dict[int, list[FamilyShare]] = {}
    for share in shares:
        for line_id in _share_line_ids(share):
            found.setdefault(line_id, []).append(share)
    return found
