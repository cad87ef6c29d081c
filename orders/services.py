"""Order use cases: create an order idempotently, mark it paid (which fulfils it), cancel, reservations.

The only place besides the other domain modules of this package (fulfilment, delivery, redemption,
refunds, topup) that commits. Every status change of a stored order goes through
`orders.events.transition`, a conditional UPDATE recorded in `order_events`; an order created already paid
is inserted with the status it ends in, each step (pending, paid, fulfilled or held) recorded the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from catalog import keyring
from catalog.models import Plan
from orders.allocation import allocate_card_keys, release_card_keys
from orders.bulk import write_new_objects
from orders.customers import Buyer, find_or_add_customer, find_or_add_customers
from orders.events import OrderError, actor_label, record_event, transition
from orders.fulfilment import (
    FulfilmentResult,
    after_fulfilment,
    assign_key,
    check_stock_alerts,
    fulfil_claimed,
    fulfil_loaded,
    fulfil_order,
    missing_grants,
    order_grants,
    order_lines,
    right_snapshots,
)
from orders.models import ORDER_SOURCES, Customer, Grant, Order, OrderLine
from orders.risk import rules as risk_rules
from saas.extensions import db, immediate_transaction
from saas.timeutil import utcnow
from tenants import audit
from tenants.scoping import current_tenant_id

MAX_LINES = 100
MAX_QUANTITY = 1000
MAX_RESERVE_MINUTES = 24 * 60


@dataclass
class CustomerInfo:
    """Who bought: any of email, phone and the channel's customer id; a name if known."""

    email: str | None = None
    phone: str | None = None
    name: str = ""
    external_id: str | None = None


@dataclass
class LineRequest:
    """One line to sell: a plan, how many, and the price paid per unit (default: the plan's price)."""

    plan_id: int
    quantity: int = 1
    unit_price: int | None = None
    sku: str = ""


@dataclass
class OrderRequest:
    """Everything needed to create an order, from any source."""

    channel: str
    external_id: str
    source: str
    customer: CustomerInfo
    lines: list[LineRequest] = field(default_factory=list)
    note: str = ""
    placed_at: dt.datetime | None = None
    paid: bool = False
    payment_reference: str | None = None
    reserve_minutes: int | None = None
    actor: str | None = None
    client_ip: str | None = None  # the buyer's address, for risk control
    device_id: str | None = None  # the buyer's device, for risk control


@dataclass
class OrderOutcome:
    """The order, whether this call created it, and what paying it did (if it did)."""

    order: Order
    created: bool
    fulfilment: FulfilmentResult | None = None


# ---------------------------------------------------------------- reading


def find_order(channel: str, external_id: str) -> Order | None:
    """Return the tenant's order with this channel and external id."""
    return db.session.scalar(select(Order).where(Order.channel == channel, Order.external_id == external_id))


def get_order(order_id: int) -> Order | None:
    """Return one of the bound tenant's orders."""
    return db.session.get(Order, (current_tenant_id(), order_id))


# ---------------------------------------------------------------- creating


def _check_request(request: OrderRequest) -> None:
    if not request.channel.strip() or len(request.channel) > 64:
        raise OrderError(_("The channel is required (at most 64 characters)."))
    if not request.external_id.strip() or len(request.external_id) > 128:
        raise OrderError(_("The external order id is required (at most 128 characters)."))
    if request.source not in ORDER_SOURCES:
        raise OrderError(_("Unknown order source."))
    if not 1 <= len(request.lines) <= MAX_LINES:
        raise OrderError(_("An order has 1 to %(n)s lines.", n=MAX_LINES))
    for line in request.lines:
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise OrderError(_("Quantities are whole numbers from 1 to %(n)s.", n=MAX_QUANTITY))
        if line.unit_price is not None and line.unit_price < 0:
            raise OrderError(_("Prices cannot be negative."))
    if request.reserve_minutes is not None and not 1 <= request.reserve_minutes <= MAX_RESERVE_MINUTES:
        raise OrderError(_("Reserve stock for 1 minute to 24 hours."))


@dataclass
class PricedLine:
    """A requested line with what the order needs of its plan, read before the write transaction."""

    request: LineRequest
    plan_id: int
    bundle_id: int
    plan_name: str
    price: int
    currency: str
    snapshot: dict[str, Any]


def check_sellable(plan_name: str, snapshot: dict[str, Any]) -> None:
    """Refuse a plan whose bundle would deliver nothing: a draft, or one with no rights in it.

    Accepted, such an order was marked fulfilled with nothing delivered: a paid order with nothing for
    the buyer. Archived bundles still sell, to their subscribers' renewals.
    """
    bundle = snapshot["bundle"]
    if bundle.get("status") == "draft":
        raise OrderError(
            _(
                "Bundle %(bundle)s is a draft: activate it before selling plan %(plan)s.",
                bundle=bundle["name"],
                plan=plan_name,
            )
        )
    if not bundle["items"]:
        raise OrderError(
            _(
                "Bundle %(bundle)s has no rights: add a right before selling plan %(plan)s.",
                bundle=bundle["name"],
                plan=plan_name,
            )
        )


def _priced_lines(request: OrderRequest) -> list[PricedLine]:
    priced = []
    for line in request.lines:
        plan = db.session.get(Plan, (current_tenant_id(), line.plan_id))
        if plan is None:
            raise OrderError(_("Unknown plan %(id)s.", id=line.plan_id))
        snapshot = plan.snapshot()
        check_sellable(plan.name, snapshot)
        priced.append(
            PricedLine(line, plan.id, plan.bundle_id, plan.name, plan.price, plan.currency, snapshot)
        )
    if len({p.currency for p in priced}) != 1:
        raise OrderError(_("All lines of an order are in one currency."))
    return priced


def _needs_code_keys(priced: list[PricedLine]) -> bool:
    return any(item["right"]["kind"] == "code" for p in priced for item in p.snapshot["bundle"]["items"])


@dataclass
class NewOrder:
    """An order built in this transaction, with its lines (in order) and its customer.

    Holding the customer keeps it in the session's identity map (which holds only referenced objects),
    so the risk checks and fulfilment find it without another query.
    """

    order: Order
    lines: list[OrderLine]
    customer: Customer


def _build_order(request: OrderRequest, priced: list[PricedLine], actor: str) -> NewOrder:
    info = request.customer
    customer = find_or_add_customer(info.email, info.phone, info.name, request.channel, info.external_id)
    return _build_order_for(customer, request, priced, actor)


def _build_order_for(
    customer: Customer, request: OrderRequest, priced: list[PricedLine], actor: str
) -> NewOrder:
    """Add a new pending order of this customer, its lines, its first event and audit row to the session."""
    now = utcnow()
    order = Order(
        channel=request.channel.strip(),
        external_id=request.external_id.strip(),
        source=request.source,
        customer_id=customer.id,
        status="pending",
        currency=priced[0].currency,
        total=0,
        note=request.note.strip(),
        created_by=actor,
        created_at=now,
        placed_at=request.placed_at or now,
        payment_reference=request.payment_reference,
        client_ip=(request.client_ip or "").strip()[:45] or None,
        device_id=(request.device_id or "").strip()[:128] or None,
    )
    db.session.add(order)
    total = 0
    lines = []
    for position, p in enumerate(priced):
        unit_price = p.price if p.request.unit_price is None else p.request.unit_price
        total += unit_price * p.request.quantity
        lines.append(
            OrderLine(
                order_id=order.id,
                position=position,
                plan_id=p.plan_id,
                bundle_id=p.bundle_id,
                sku=p.request.sku[:120],
                title=f"{p.snapshot['bundle']['name']} · {p.plan_name}"[:240],
                quantity=p.request.quantity,
                unit_price=unit_price,
                currency=p.currency,
                total=unit_price * p.request.quantity,
                snapshot=p.snapshot,
            )
        )
    db.session.add_all(lines)
    order.total = total
    record_event(order.id, None, "pending", actor=actor, reason=request.note)
    audit.record(
        "order.created",
        "order",
        order.id,
        channel=order.channel,
        external_id=order.external_id,
        source=order.source,
        total=total,
        currency=order.currency,
    )
    return NewOrder(order, lines, customer)


def create_order(request: OrderRequest) -> OrderOutcome:
    """Create an order, or return the existing one with the same (channel, external id).

    Lines snapshot their plan, price and bundle contents. With `paid`, the order is paid and fulfilled
    in the transaction that creates it; with `reserve_minutes`, an unpaid order holds card keys for that
    long.
    """
    _check_request(request)
    channel, external_id = request.channel.strip(), request.external_id.strip()
    existing = find_order(channel, external_id)
    if existing is not None:
        return _again(existing, request)
    priced = _priced_lines(request)
    actor = actor_label(request.actor)
    with immediate_transaction(db.session()):
        if _needs_code_keys(priced) and not keyring.has_tenant_keys():
            db.session.rollback()  # nothing written yet: the tenant's keys are committed first, once
            keyring.ensure_tenant_keys()
            return create_order(request)
        try:
            outcome, announced = _create(request, priced, actor)
            db.session.commit()
        except IntegrityError:  # created by a concurrent call since our check: theirs stands
            db.session.rollback()
            existing = find_order(channel, external_id)
            if existing is None:
                raise
            return _again(existing, request)
        except BaseException:
            db.session.rollback()
            raise
    risk_rules.announce(current_tenant_id(), announced)
    if outcome.fulfilment is not None and outcome.fulfilment.acted:
        after_fulfilment([outcome.fulfilment])
    db.session.refresh(outcome.order)
    return outcome


def _create(
    request: OrderRequest, priced: list[PricedLine], actor: str
) -> tuple[OrderOutcome, list[dict[str, Any]]]:
    """Build the order, then pay it or assess it; return it and what to announce after the commit."""
    new = _build_order(request, priced, actor)
    order = new.order
    outcome = OrderOutcome(order, True)
    if request.paid:
        outcome.fulfilment, announced = _pay_new(new, request, actor)
        return outcome, announced
    assessment = risk_rules.assess_order(order, new.lines, as_sold=True)
    if assessment.hold_reason:
        _hold_new(order, assessment.hold_reason, actor)
    elif request.reserve_minutes:
        reserve_stock(order, request.reserve_minutes)
    return outcome, _risk_payloads(order, assessment)


def _pay_new(
    new: NewOrder, request: OrderRequest, actor: str
) -> tuple[FulfilmentResult, list[dict[str, Any]]]:
    """Pay and fulfil (or hold) an order built in this transaction, as `mark_paid` does a stored one.

    The order is still unwritten: it is inserted once, with the status it ends in. Nothing below needs
    it written first (the risk checks count other orders, allocation reads keys).
    """
    order = new.order
    order.status, order.paid_at, order.reserved_until = "paid", utcnow(), None
    if request.payment_reference:
        order.payment_reference = request.payment_reference[:128]
    record_event(order.id, "pending", "paid", actor=actor)
    audit.record("order.paid", "order", order.id, reference=request.payment_reference, reason=None)
    with db.session.no_autoflush:
        assessment = risk_rules.assess_order(order, new.lines, as_sold=True)
        announced = _risk_payloads(order, assessment)
        if assessment.hold_reason:
            order.status, order.hold_reason = "held", assessment.hold_reason
            record_event(order.id, "paid", "held", actor=actor, reason=assessment.hold_reason)
            audit.record("order.held", "order", order.id, reason=assessment.hold_reason)
            return FulfilmentResult(order.id, False, "held"), announced
        customers = {new.customer.id: new.customer}
        (result,) = fulfil_loaded([order], customers, {order.id: new.lines}, {}, actor=actor)
    return result, announced


def _again(order: Order, request: OrderRequest) -> OrderOutcome:
    """A repeated create: change nothing, except that a repeat that says "paid" pays a pending order."""
    outcome = OrderOutcome(order, False)
    if request.paid and order.status == "pending":
        outcome.fulfilment = mark_paid(order.id, reference=request.payment_reference, actor=request.actor)
        db.session.refresh(order)
    return outcome


# ---------------------------------------------------------------- a batch of paid orders


class PaidOrderBatch:
    """New paid orders created and fulfilled together in the caller's transaction (the inbox drain).

    Each order ends as `create_order(paid=True)` leaves it, with the same rows (customer, order, lines,
    events, audit rows, grants, delivery record); the work is done per batch: plans are read once,
    customers found and added with a few statements, each order assessed by the risk rules as if the
    batch's earlier orders were written (`risk.rules.BatchCounts`), and the fulfilment of all of them
    allocates keys per right with one statement, in the order added (payment order). The caller checks
    that no order exists yet, commits, then calls `after_commit`; if the commit fails (an order or a channel
    customer created meanwhile by another transaction) it rolls back and creates the orders one by one.
    """

    def __init__(self) -> None:
        self._plans: dict[int, tuple[int, int, str, int, str, dict[str, Any]]] = {}
        self._keys_ready = False
        self._requests: list[tuple[OrderRequest, list[PricedLine]]] = []
        self.counts = risk_rules.BatchCounts()
        self.outcomes: list[OrderOutcome] = []
        self._announced: list[dict[str, Any]] = []

    def price(self, request: OrderRequest) -> list[PricedLine]:
        """Check a request and price its lines (plans read once per batch); OrderError when refused."""
        _check_request(request)
        priced = []
        for line in request.lines:
            plan = self._plan(line.plan_id)
            if plan is None:
                raise OrderError(_("Unknown plan %(id)s.", id=line.plan_id))
            plan_id, bundle_id, name, price, currency, snapshot = plan
            check_sellable(name, snapshot)
            priced.append(PricedLine(line, plan_id, bundle_id, name, price, currency, snapshot))
        if len({p.currency for p in priced}) != 1:
            raise OrderError(_("All lines of an order are in one currency."))
        if _needs_code_keys(priced) and not self._keys_ready:
            if not keyring.has_tenant_keys():
                keyring.ensure_tenant_keys()  # commits: call before the batch writes
            self._keys_ready = True
        return priced

    def _plan(self, plan_id: int) -> tuple[int, int, str, int, str, dict[str, Any]] | None:
        if plan_id not in self._plans:
            plan = db.session.get(Plan, (current_tenant_id(), plan_id))
            if plan is None:
                return None
            self._plans[plan_id] = (
                plan.id,
                plan.bundle_id,
                plan.name,
                plan.price,
                plan.currency,
                plan.snapshot(),
            )
        return self._plans[plan_id]

    def add(self, request: OrderRequest, priced: list[PricedLine]) -> None:
        """Add a priced request (see `price`) to the batch; nothing is written until `write`."""
        self._requests.append((request, priced))

    def write(self) -> list[OrderOutcome]:
        """Create, assess and fulfil the batch's orders in the caller's transaction; one outcome each."""
        found = find_or_add_customers(
            [
                Buyer(r.customer.email, r.customer.phone, r.customer.name, r.channel, r.customer.external_id)
                for r, _priced in self._requests
            ]
        )
        self.counts.external_ids = found.external_ids
        to_fulfil: dict[str, list[NewOrder]] = {}
        with db.session.no_autoflush:
            for (request, priced), customer in zip(self._requests, found.customers, strict=True):
                actor = actor_label(request.actor)
                new = _build_order_for(customer, request, priced, actor)
                outcome = OrderOutcome(new.order, True)
                self.outcomes.append(outcome)
                if self._pay(new, request, actor, outcome):
                    to_fulfil.setdefault(actor, []).append(new)
            write_new_objects()  # customers, orders, lines, events, audit rows: one INSERT per table
            flagged = self.counts.write_flags()
            self._announced = [
                p
                for p in self._announced
                if not p["flag_id"].isdigit() or int(p["flag_id"]) in flagged or p["kind"] != "plan_burst"
            ]
            for actor, news in to_fulfil.items():
                results = fulfil_loaded(
                    [n.order for n in news],
                    {n.customer.id: n.customer for n in news},
                    {n.order.id: n.lines for n in news},
                    {},
                    actor=actor,
                )
                by_order = {result.order_id: result for result in results}
                for outcome in self.outcomes:
                    if outcome.order.id in by_order:
                        outcome.fulfilment = by_order[outcome.order.id]
            write_new_objects()  # the fulfilment's audit rows
        db.session.flush()  # held orders, flags and audit rows: a clash shows here, before the commit
        return self.outcomes

    def _pay(self, new: NewOrder, request: OrderRequest, actor: str, outcome: OrderOutcome) -> bool:
        """Pay an order built in the batch and assess it; return whether it is to be fulfilled."""
        order = new.order
        order.status, order.paid_at, order.reserved_until = "paid", utcnow(), None
        if request.payment_reference:
            order.payment_reference = request.payment_reference[:128]
        record_event(order.id, "pending", "paid", actor=actor)
        audit.record("order.paid", "order", order.id, reference=request.payment_reference, reason=None)
        assessment = risk_rules.assess_order(order, new.lines, as_sold=True, batch=self.counts)
        self._announced.extend(_risk_payloads(order, assessment))
        if assessment.hold_reason:
            order.status, order.hold_reason = "held", assessment.hold_reason
            record_event(order.id, "paid", "held", actor=actor, reason=assessment.hold_reason)
            audit.record("order.held", "order", order.id, reason=assessment.hold_reason)
            outcome.fulfilment = FulfilmentResult(order.id, False, "held")
            return False
        return True

    def after_commit(self) -> None:
        """After the commit: announce flags and fulfilled orders, send the batch's messages with one job."""
        risk_rules.announce(current_tenant_id(), self._announced)
        after_fulfilment([o.fulfilment for o in self.outcomes if o.fulfilment and o.fulfilment.acted])


# ---------------------------------------------------------------- risk control


def _hold_new(order: Order, reason: str, actor: str) -> None:
    """Hold an unpaid order just built in this transaction (nothing is reserved for it)."""
    order.status, order.hold_reason = "held", reason
    record_event(order.id, "pending", "held", actor=actor, reason=reason)
    audit.record("order.held", "order", order.id, reason=reason)


def _risk_payloads(order: Order, assessment: risk_rules.Assessment | None) -> list[dict[str, Any]]:
    """Describe, before the commit, what to announce after it: new flags and the hold."""
    if assessment is None:
        return []
    payloads = [risk_rules.flag_payload(flag) for flag in assessment.flags]
    if assessment.hold_reason:
        payloads.append(risk_rules.held_payload(order, assessment.hold_reason))
    return payloads


def _hold_paid(order_id: int, reason: str, actor: str) -> None:
    """Hold a just-paid order before allocation, inside the paying transaction."""
    transition(order_id, "paid", "held", actor=actor, reason=reason, hold_reason=reason)
    audit.record("order.held", "order", order_id, reason=reason)


# ---------------------------------------------------------------- paying and cancelling


def mark_paid(
    order_id: int,
    *,
    reference: str | None = None,
    paid_at: dt.datetime | None = None,
    actor: str | None = None,
    reason: str = "",
) -> FulfilmentResult:
    """Record the payment of a pending order and fulfil it in the same transaction, exactly once.

    A repeated or concurrent payment of the same order changes nothing and returns `acted=False`.
    """
    if get_order(order_id) is None:
        raise OrderError(_("Unknown order."))
    label = actor_label(actor)
    values: dict[str, Any] = {"paid_at": paid_at or utcnow(), "reserved_until": None}
    if reference:
        values["payment_reference"] = reference[:128]
    with immediate_transaction(db.session()):
        if not transition(order_id, "pending", "paid", actor=label, reason=reason, **values):
            db.session.commit()
            return FulfilmentResult(order_id, False)
        try:
            audit.record("order.paid", "order", order_id, reference=reference, reason=reason or None)
            order = db.session.get(Order, (current_tenant_id(), order_id), populate_existing=True)
            assert order is not None
            assessment = risk_rules.assess_order(order, order_lines(order_id))
            announced = _risk_payloads(order, assessment)
            if assessment.hold_reason:
                _hold_paid(order_id, assessment.hold_reason, label)
                db.session.commit()
                risk_rules.announce(current_tenant_id(), announced)
                return FulfilmentResult(order_id, False, "held")
            transition(order_id, "paid", "fulfilling", actor=label)
            (result,) = fulfil_claimed([order_id], actor=label, reason=reason)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    risk_rules.announce(current_tenant_id(), announced)
    after_fulfilment([result])
    return result


def cancel_order(order_id: int, *, reason: str, actor: str | None = None) -> bool:
    """Cancel an unpaid order; its reserved keys go back to stock. Paid orders are refunded instead."""
    if not reason.strip():
        raise OrderError(_("Say why the order is cancelled."))
    label = actor_label(actor)
    with immediate_transaction(db.session()):
        if not transition(
            order_id,
            "pending",
            "cancelled",
            actor=label,
            reason=reason,
            cancelled_at=utcnow(),
            reserved_until=None,
        ):
            db.session.commit()
            order = get_order(order_id)
            if order is None:
                raise OrderError(_("Unknown order."))
            raise OrderError(_("Only unpaid orders can be cancelled; refund a paid order instead."))
        rights = _release_reserved(order_id, to_status="cancelled")
        audit.record("order.cancelled", "order", order_id, reason=reason)
        db.session.commit()
    check_stock_alerts(rights)
    return True


# ---------------------------------------------------------------- reservations


def reserve_stock(order: Order, minutes: int) -> int:
    """Hold card keys for an unpaid order's card-key rights for `minutes`; return how many were held.

    Rights without stock are simply not held: they are allocated (or backordered) when the order is paid.
    Runs inside the caller's transaction.
    """
    now = utcnow()
    lines = order_lines(order.id)
    snapshots = right_snapshots(lines)
    wanted = [g for g in missing_grants(order, lines, order_grants(order.id)) if g.kind == "card_key"]
    by_right: dict[int, list[Grant]] = {}
    for grant in wanted:
        by_right.setdefault(grant.right_id, []).append(grant)
    held = 0
    for right_id, grants in by_right.items():
        keys = allocate_card_keys(right_id, len(grants), reserve=True)
        for grant, key in zip(grants, keys, strict=False):
            assign_key(grant, key, now, snapshots[(grant.order_line_id, grant.item_index)], reserve=True)
            db.session.add(grant)
            held += 1
    if held:
        order.reserved_until = now + dt.timedelta(minutes=minutes)
        audit.record(
            "order.stock_reserved", "order", order.id, keys=held, until=order.reserved_until.isoformat()
        )
    return held


def _release_reserved(order_id: int, *, to_status: str) -> set[int]:
    """Release an order's reserved keys; the grants become `to_status` (pending again, or cancelled)."""
    grants = [g for g in order_grants(order_id, lock=True) if g.status == "reserved"]
    release_card_keys(g.card_key_id for g in grants if g.card_key_id is not None)
    now = utcnow()
    for grant in grants:
        grant.status, grant.card_key_id, grant.reserved_at, grant.valid_until = to_status, None, None, None
        grant.unit_cost = 0
        if to_status == "cancelled":
            grant.cancelled_at = now
    return {g.right_id for g in grants}


def release_expired_reservations(now: dt.datetime | None = None) -> int:
    """Release the reservations of the bound tenant's unpaid orders whose hold has expired."""
    now = now or utcnow()
    expired = list(
        db.session.scalars(
            select(Order.id).where(
                Order.status == "pending", Order.reserved_until.is_not(None), Order.reserved_until <= now
            )
        )
    )
    released = 0
    rights: set[int] = set()
    for order_id in expired:
        with immediate_transaction(db.session()):
            claimed = db.session.execute(
                update(Order)
                .where(Order.id == order_id, Order.status == "pending", Order.reserved_until <= now)
                .values(reserved_until=None)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if claimed:
                rights |= _release_reserved(order_id, to_status="pending")
                audit.record(
                    "order.reservation_released", "order", order_id, actor="system: reservation expired"
                )
                released += 1
            db.session.commit()
    check_stock_alerts(rights)
    return released


def fulfil_stuck_orders(older_than: dt.timedelta = dt.timedelta(minutes=2)) -> int:
    """Fulfil paid orders that no fulfilment pass has touched yet (the safety net after a crash)."""
    cutoff = utcnow() - older_than
    has_grants = (
        select(Grant.id).where(Grant.tenant_id == Order.tenant_id, Grant.order_id == Order.id).exists()
    )
    stuck = list(
        db.session.scalars(
            select(Order.id).where(Order.status == "paid", Order.paid_at <= cutoff, ~has_grants).limit(500)
        )
    )
    return sum(1 for order_id in stuck if fulfil_order(order_id, actor="system: stuck order sweep").acted)
