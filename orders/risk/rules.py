"""Risk rules: decide whether an order must be held, and flag suspicious redemptions and reveals.

Reads only, plus flags added to the caller's session: the caller owns the transaction and, after its
commit, announces the new flags (`announce`). Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from catalog.models import Plan
from orders.bulk import column_values
from orders.models import Customer, CustomerExternalId, Order, OrderLine, Redemption
from orders.risk.models import BlocklistEntry, RiskFlag, RiskRule, RiskTrace
from saas import events
from saas.extensions import db, is_postgres
from saas.timeutil import utcnow
from tenants.scoping import current_tenant_id

# Orders that count against limits and velocity: everything the customer got or may still get.
COUNTED_STATUSES = (
    "held",
    "paid",
    "fulfilling",
    "fulfilled",
    "partially_fulfilled",
    "backordered",
    "partially_refunded",
)
# Anomaly rules are on until a tenant changes them; velocity rules that hold orders are opt-in.
DEFAULT_RULES: dict[str, tuple[int, int]] = {
    "reveal_ips_per_grant": (3, 24 * 60),
    "orders_per_plan": (200, 60),
}


@dataclass
class Assessment:
    """Why an order must be held (None: go ahead), and the flags raised while looking."""

    hold_reason: str | None = None
    flags: list[RiskFlag] = field(default_factory=list)


@dataclass
class Threshold:
    """An active rule: at most `threshold` within `window`."""

    kind: str
    threshold: int
    window: dt.timedelta


def _threshold(kind: str, row: RiskRule | None) -> Threshold | None:
    """Return the rule a tenant's row (or, without one, the default) makes of this kind; None when off."""
    if row is None:
        if kind not in DEFAULT_RULES:
            return None
        threshold, minutes = DEFAULT_RULES[kind]
        return Threshold(kind, threshold, dt.timedelta(minutes=minutes))
    if not row.active:
        return None
    return Threshold(kind, row.threshold, dt.timedelta(minutes=row.window_minutes))


def rule(kind: str) -> Threshold | None:
    """Return the bound tenant's active rule of this kind (or its default), None when off."""
    return _threshold(kind, db.session.scalar(select(RiskRule).where(RiskRule.kind == kind)))


class Rules:
    """The bound tenant's rules, read with one query, for a check that consults several kinds."""

    def __init__(self) -> None:
        self._rows = {row.kind: row for row in db.session.scalars(select(RiskRule))}

    def get(self, kind: str) -> Threshold | None:
        """Return the active rule of this kind (or its default), None when off."""
        return _threshold(kind, self._rows.get(kind))


@dataclass
class BatchCounts:
    """Orders assessed together before any is written (the inbox drain's batch): what each adds to the counts.

    The rules and the blocklist are read once per batch; a rule that counts a customer's (or an address's,
    a device's, a plan's) orders adds those assessed earlier in the batch to what the database holds.
    """

    rules: Rules = field(default_factory=Rules)
    external_ids: dict[int, list[str]] = field(default_factory=dict)  # customer id -> channel ids
    units: dict[tuple[int, int], int] = field(default_factory=dict)  # (customer, plan) -> units
    orders_by: dict[tuple[str, Any], int] = field(default_factory=dict)  # (column, value) -> orders
    plan_orders: dict[int, int] = field(default_factory=dict)  # plan -> orders in the batch
    plan_written: dict[int, int] = field(default_factory=dict)  # plan -> written orders (read once)
    flagged: set[str] = field(default_factory=set)
    flag_checked: set[str] = field(default_factory=set)
    new_flags: list[RiskFlag] = field(default_factory=list)  # raised in the batch, not yet written
    _blocklist: list[BlocklistEntry] | None = None

    def blocklist_entries(self) -> list[BlocklistEntry]:
        """Return the tenant's whole blocklist, read on first use."""
        if self._blocklist is None:
            self._blocklist = list(db.session.scalars(select(BlocklistEntry)))
        return self._blocklist

    def write_flags(self) -> set[int]:
        """Insert the batch's new flags, skipping any another transaction raised meanwhile (the same
        dedupe key); return the ids of those written (the others are not announced)."""
        written: set[int] = set()
        for flag in self.new_flags:
            values = column_values(flag)
            statement = (pg_insert if is_postgres() else sqlite_insert)(RiskFlag).values(**values)
            done = db.session.execute(
                statement.on_conflict_do_nothing().returning(RiskFlag.id),
                execution_options={"synchronize_session": False},
            ).scalar()
            if done is not None:
                written.add(int(done))
        return written

    def count(self, order: Order, lines: list[OrderLine]) -> None:
        """Add an assessed order: the next orders of the batch count it."""
        for plan_id in {line.plan_id for line in lines if line.plan_id is not None}:
            self.plan_orders[plan_id] = self.plan_orders.get(plan_id, 0) + 1
        if order.customer_id is not None:
            for line in lines:
                if line.plan_id is not None:
                    key = (order.customer_id, line.plan_id)
                    self.units[key] = self.units.get(key, 0) + line.quantity
        for column, _label in VELOCITY_COLUMNS.values():
            value = getattr(order, column)
            if value is not None:
                self.orders_by[(column, value)] = self.orders_by.get((column, value), 0) + 1


# ---------------------------------------------------------------- blocklists


def normalise_ip(value: str) -> str:
    """Return an address or CIDR in canonical network form; ValueError when it is neither."""
    return str(ipaddress.ip_network(value.strip(), strict=False))


def _ip_matches(entry: BlocklistEntry, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return address in ipaddress.ip_network(entry.value, strict=False)
    except ValueError:
        return False


def _client_address(client_ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not client_ip:
        return None
    try:
        return ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return None


def _customer_values(order: Order, external_ids: list[str] | None = None) -> list[tuple[str, str]]:
    """Return the (kind, value) pairs a blocklist may name for the order; `external_ids`: known already."""
    values: list[tuple[str, str]] = []
    customer = db.session.get(Customer, (order.tenant_id, order.customer_id)) if order.customer_id else None
    if customer is not None:
        if customer.email:
            email = customer.email.strip().lower()
            values += [("email", email), ("email_domain", email.rpartition("@")[2])]
        if customer.phone:
            values.append(("phone", customer.phone.strip()))
        external = (
            external_ids
            if external_ids is not None
            else db.session.scalars(
                select(CustomerExternalId.external_id).where(CustomerExternalId.customer_id == customer.id)
            )
        )
        values += [("channel_customer", value.strip().lower()) for value in external]
    if order.device_id:
        values.append(("device", order.device_id.strip().lower()))
    return values


def blocked_by(order: Order, batch: BatchCounts | None = None) -> BlocklistEntry | None:
    """Return the blocklist entry that matches the order's customer, address or device, if any.

    One query reads the entries of every value and, when the order has an address, the IP entries; the
    customer's values are tried first, in order, then the address ranges. In a batch the blocklist was read
    once for all its orders.
    """
    values = _customer_values(order, batch.external_ids.get(order.customer_id or 0) if batch else None)
    address = _client_address(order.client_ip)
    if not values and address is None:
        return None
    if batch is not None:
        entries = batch.blocklist_entries()
        if not entries:
            return None
    else:
        conditions: list[ColumnElement[bool]] = []
        if values:
            conditions.append(tuple_(BlocklistEntry.kind, BlocklistEntry.value).in_(values))
        if address is not None:
            conditions.append(BlocklistEntry.kind == "ip")
        entries = list(db.session.scalars(select(BlocklistEntry).where(or_(*conditions))))
    exact = {(entry.kind, entry.value): entry for entry in entries if entry.kind != "ip"}
    for value in values:
        if value in exact:
            return exact[value]
    if address is None:
        return None
    return next((entry for entry in entries if entry.kind == "ip" and _ip_matches(entry, address)), None)


# ---------------------------------------------------------------- purchase limits and velocity


def _lines(order_id: int) -> list[OrderLine]:
    return list(db.session.scalars(select(OrderLine).where(OrderLine.order_id == order_id)))


@dataclass(frozen=True)
class PurchaseLimit:
    """A plan's limit per customer: at most `limit` units within `days`."""

    plan_name: str
    limit: int
    days: int


def _purchase_limit(tenant_id: int, plan_id: int, sold: dict[str, Any] | None) -> PurchaseLimit | None:
    """Return a plan's limit as sold (the line's plan snapshot) or else as the plan has it now."""
    if sold is not None:
        name, limit, days = str(sold.get("name", "")), sold.get("purchase_limit"), sold.get("period_days")
    else:
        plan = db.session.get(Plan, (tenant_id, plan_id))
        if plan is None:
            return None
        name, limit, days = plan.name, plan.purchase_limit, plan.duration_days
    return PurchaseLimit(name, int(limit), int(days or 0)) if limit else None


def over_purchase_limit(
    order: Order, lines: list[OrderLine], *, as_sold: bool = False, batch: BatchCounts | None = None
) -> str | None:
    """Return why the order (with these lines) exceeds a plan's purchase limit per customer and period.

    The limit is the plan's current one; with `as_sold` (an order being created) it is the one in the
    plan snapshot its lines were priced with a moment ago. The orders of the `batch` assessed before this
    one count as bought (they are not written yet).
    """
    if order.customer_id is None:
        return None
    wanted: dict[int, int] = {}
    sold: dict[int, dict[str, Any]] = {}
    for line in lines:
        if line.plan_id is not None:
            wanted[line.plan_id] = wanted.get(line.plan_id, 0) + line.quantity
            sold[line.plan_id] = line.snapshot.get("plan", {})
    for plan_id, quantity in wanted.items():
        limit = _purchase_limit(order.tenant_id, plan_id, sold[plan_id] if as_sold else None)
        if limit is None:
            continue
        since = utcnow() - dt.timedelta(days=max(1, limit.days))
        bought = db.session.scalar(
            select(func.coalesce(func.sum(OrderLine.quantity), 0))
            .join(Order, (Order.tenant_id == OrderLine.tenant_id) & (Order.id == OrderLine.order_id))
            .where(
                OrderLine.plan_id == plan_id,
                Order.customer_id == order.customer_id,
                Order.id != order.id,
                Order.status.in_(COUNTED_STATUSES),
                Order.created_at >= since,
            )
        )
        bought = int(bought or 0) + (batch.units.get((order.customer_id, plan_id), 0) if batch else 0)
        if bought + quantity > limit.limit:
            return _(
                "Purchase limit: plan %(plan)s allows %(limit)s per customer per %(days)s days; "
                "this customer already has %(bought)s and orders %(quantity)s more.",
                plan=limit.plan_name,
                limit=limit.limit,
                days=limit.days,
                bought=int(bought or 0),
                quantity=quantity,
            )
    return None


VELOCITY_COLUMNS = {
    "orders_per_customer": ("customer_id", _l("customer")),
    "orders_per_ip": ("client_ip", _l("IP address")),
    "orders_per_device": ("device_id", _l("device")),
}


def over_velocity(order: Order, rules: Rules, batch: BatchCounts | None = None) -> str | None:
    """Return why the order crosses an orders-per-customer/IP/device velocity rule, or None.

    The orders of the `batch` assessed before this one count (they are not written yet).
    """
    for kind, (column, label) in VELOCITY_COLUMNS.items():
        limit = rules.get(kind)
        value = getattr(order, column)
        if limit is None or value is None:
            continue
        count = db.session.scalar(
            select(func.count())
            .select_from(Order)
            .where(
                getattr(Order, column) == value,
                Order.id != order.id,
                Order.status != "cancelled",
                Order.created_at >= utcnow() - limit.window,
            )
        )
        earlier = batch.orders_by.get((column, value), 0) if batch else 0
        if int(count or 0) + earlier + 1 > limit.threshold:
            return _(
                "Velocity: more than %(n)s orders from one %(what)s within %(minutes)s minutes.",
                n=limit.threshold,
                what=label,
                minutes=int(limit.window.total_seconds() // 60),
            )
    return None


def assess(order_id: int) -> Assessment:
    """Decide whether an order must be held before anything is allocated; flag a burst for its plans."""
    order = db.session.get(Order, (current_tenant_id(), order_id), populate_existing=True)
    if order is None:
        return Assessment()
    return assess_order(order, _lines(order.id))


def assess_order(
    order: Order, lines: list[OrderLine], *, as_sold: bool = False, batch: BatchCounts | None = None
) -> Assessment:
    """Assess an order whose lines the caller holds already (see `assess`; `as_sold`: a new order's).

    In a `batch` (orders created together, not yet written) the rules and the blocklist are read once, and
    each order is assessed as if the batch's earlier orders had been written before it: a burst of one
    customer's orders gets the answers it would get one by one.
    """
    rules = batch.rules if batch is not None else Rules()
    assessment = Assessment()
    assessment.flags.extend(plan_bursts(order, lines, rules, batch))
    assessment.hold_reason = _hold_reason(order, lines, rules, as_sold, batch)
    if batch is not None:
        batch.count(order, lines)
    return assessment


def _hold_reason(
    order: Order, lines: list[OrderLine], rules: Rules, as_sold: bool, batch: BatchCounts | None
) -> str | None:
    if order.risk_reviewed_at is not None:
        return None
    entry = blocked_by(order, batch)
    if entry is not None:
        return _(
            "Blocklist (%(kind)s %(value)s): %(reason)s",
            kind=entry.kind,
            value=entry.value,
            reason=entry.reason,
        )
    return over_purchase_limit(order, lines, as_sold=as_sold, batch=batch) or over_velocity(
        order, rules, batch
    )


# ---------------------------------------------------------------- anomalies and flags


def is_flagged(dedupe_key: str) -> bool:
    """Tell whether this thing is flagged already."""
    return db.session.scalar(select(RiskFlag.id).where(RiskFlag.dedupe_key == dedupe_key[:160])) is not None


def raise_flag(kind: str, dedupe_key: str, reason: str, **about: Any) -> RiskFlag | None:
    """Write a flag unless the same thing is flagged already; return it when new.

    Two orders processed at the same moment may both find the thing unflagged: the second to write finds the
    first's flag (the unique dedupe key) and adds nothing.
    """
    if is_flagged(dedupe_key):
        return None
    flag = RiskFlag(kind=kind, dedupe_key=dedupe_key[:160], reason=reason, created_at=utcnow(), **about)
    try:
        with db.session.begin_nested():
            db.session.add(flag)
    except IntegrityError:
        return None
    return flag


def _bucket(limit: Threshold) -> int:
    return int(utcnow().timestamp() // max(60, limit.window.total_seconds()))


def _other_orders_of_plan(plan_id: int, order_id: int, since: dt.datetime, at_most: int | None = None) -> int:
    """Count the orders but this one created since `since` with a line of the plan (stop at `at_most`)."""
    sold = (
        Order.id != order_id,
        Order.created_at >= since,
        select(OrderLine.id)
        .where(
            OrderLine.tenant_id == Order.tenant_id,
            OrderLine.order_id == Order.id,
            OrderLine.plan_id == plan_id,
        )
        .exists(),
    )
    if at_most is None:
        return int(db.session.scalar(select(func.count()).select_from(Order).where(*sold)) or 0)
    return len(db.session.scalars(select(Order.id).where(*sold).limit(at_most)).all())


def plan_bursts(
    order: Order, lines: list[OrderLine], rules: Rules, batch: BatchCounts | None = None
) -> list[RiskFlag]:
    """Flag each plan of the order that sold more than the burst threshold within the window.

    The order itself counts, written yet or not. During a sale the window holds many orders, so the check
    counts at most `threshold` others, and none once the plan is flagged for this window; the exact number is
    counted once, for the flag's message. In a batch the written orders are counted once per plan, and the
    batch's earlier orders added.
    """
    limit = rules.get("orders_per_plan")
    if limit is None:
        return []
    since = utcnow() - limit.window
    flags = []
    for plan_id in sorted({line.plan_id for line in lines if line.plan_id is not None}):
        dedupe_key = f"plan_burst:{plan_id}:{_bucket(limit)}"
        if batch is not None:
            if dedupe_key not in batch.flag_checked:  # read once per batch
                batch.flag_checked.add(dedupe_key)
                if is_flagged(dedupe_key):
                    batch.flagged.add(dedupe_key)
            if dedupe_key in batch.flagged:
                continue
        elif is_flagged(dedupe_key):  # first: once a sale is flagged, its next orders count nothing
            continue
        if batch is not None:
            written = batch.plan_written.get(plan_id)
            if written is None:
                written = _other_orders_of_plan(plan_id, order.id, since, at_most=limit.threshold)
                batch.plan_written[plan_id] = written
            others = written + batch.plan_orders.get(plan_id, 0)
        else:
            others = _other_orders_of_plan(plan_id, order.id, since, at_most=limit.threshold)
        if others < limit.threshold:
            continue
        count = _other_orders_of_plan(plan_id, order.id, since) + 1
        count += batch.plan_orders.get(plan_id, 0) if batch is not None else 0
        if batch is not None:
            batch.flagged.add(dedupe_key)
        reason = _("Burst: %(n)s orders for one plan within %(m)s minutes.", n=count, m=_minutes(limit))
        if batch is not None:  # written by `BatchCounts.write_flags`, which skips one flagged meanwhile
            flag = RiskFlag(
                kind="plan_burst",
                dedupe_key=dedupe_key[:160],
                reason=reason,
                created_at=utcnow(),
                plan_id=plan_id,
                order_id=order.id,
            )
            batch.new_flags.append(flag)
            flags.append(flag)
            continue
        new_flag = raise_flag("plan_burst", dedupe_key, reason, plan_id=plan_id, order_id=order.id)
        if new_flag is not None:
            flags.append(new_flag)
    return flags


def _minutes(limit: Threshold) -> int:
    return int(limit.window.total_seconds() // 60)


def note_redemption(grant_id: int | None, ip: str | None, outcome: str) -> list[RiskFlag]:
    """Record a redemption's address; flag a redemption after refund or over the per-IP velocity."""
    flags: list[RiskFlag] = []
    if outcome == "rejected_refunded" and grant_id is not None:
        flag = raise_flag(
            "redemption_after_refund",
            f"redemption_after_refund:{grant_id}",
            _("A right was redeemed after its refund."),
            grant_id=grant_id,
            ip=ip,
        )
        flags += [flag] if flag is not None else []
    if not ip:
        return flags
    db.session.add(RiskTrace(kind="redemption", grant_id=grant_id, ip=ip[:45], at=utcnow()))
    limit = rule("redemptions_per_ip")
    if limit is None:
        return flags
    db.session.flush()
    count = db.session.scalar(
        select(func.count())
        .select_from(RiskTrace)
        .where(RiskTrace.kind == "redemption", RiskTrace.ip == ip, RiskTrace.at >= utcnow() - limit.window)
    )
    if int(count or 0) > limit.threshold:
        _mark_latest_redemption_flagged(grant_id)
        flag = raise_flag(
            "redemption_velocity",
            f"redemption_velocity:{ip}:{_bucket(limit)}",
            _(
                "Velocity: %(n)s redemptions from %(ip)s within %(m)s minutes (at most %(t)s).",
                n=count,
                ip=ip,
                m=_minutes(limit),
                t=limit.threshold,
            ),
            grant_id=grant_id,
            ip=ip,
        )
        flags += [flag] if flag is not None else []
    return flags


def _mark_latest_redemption_flagged(grant_id: int | None) -> None:
    """Mark the redemption just logged for this grant as flagged (the log shows ⚑)."""
    latest = db.session.scalar(
        select(Redemption)
        .where(Redemption.grant_id == grant_id)
        .order_by(Redemption.at.desc(), Redemption.id.desc())
        .limit(1)
    )
    if latest is not None:
        latest.flagged = True


def note_reveal(grant_id: int, order_id: int, ip: str | None) -> list[RiskFlag]:
    """Record a reveal's address; flag a key revealed from more distinct addresses than the rule allows."""
    if not ip:
        return []
    db.session.add(RiskTrace(kind="reveal", grant_id=grant_id, ip=ip[:45], at=utcnow()))
    limit = rule("reveal_ips_per_grant")
    if limit is None:
        return []
    db.session.flush()
    addresses = db.session.scalar(
        select(func.count(func.distinct(RiskTrace.ip))).where(
            RiskTrace.kind == "reveal",
            RiskTrace.grant_id == grant_id,
            RiskTrace.at >= utcnow() - limit.window,
        )
    )
    if int(addresses or 0) <= limit.threshold:
        return []
    flag = raise_flag(
        "reveal_many_ips",
        f"reveal_many_ips:{grant_id}",
        _("A key was revealed from %(n)s addresses within %(m)s minutes.", n=addresses, m=_minutes(limit)),
        grant_id=grant_id,
        order_id=order_id,
        ip=ip,
    )
    return [flag] if flag is not None else []


def flag_payload(flag: RiskFlag) -> dict[str, Any]:
    """Describe a flag for outbound webhooks."""
    return {
        "flag_id": str(flag.id),
        "kind": flag.kind,
        "reason": flag.reason,
        "order_id": None if flag.order_id is None else str(flag.order_id),
        "grant_id": None if flag.grant_id is None else str(flag.grant_id),
        "plan_id": None if flag.plan_id is None else str(flag.plan_id),
        "ip": flag.ip,
        "created_at": flag.created_at.isoformat(),
    }


def announce(tenant_id: int, payloads: list[dict[str, Any]]) -> None:
    """After the commit: publish `risk.flagged` for each new flag (outbound webhooks listen)."""
    for payload in payloads:
        events.publish("risk.flagged", tenant_id, payload, key=f"risk.flagged:{payload['flag_id']}")


def held_payload(order: Order, reason: str) -> dict[str, Any]:
    """Describe a held order for outbound webhooks (a hold is a flag a person must act on)."""
    return {
        "flag_id": f"order-{order.id}",
        "kind": "order_held",
        "reason": reason,
        "order_id": str(order.id),
        "grant_id": None,
        "plan_id": None,
        "ip": order.client_ip,
        "created_at": utcnow().isoformat(),
    }
