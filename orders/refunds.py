"""Refunds: whole orders, lines or single grants, from the back office, the API or a channel.

Undelivered grants are cancelled and their reserved keys go back to stock; delivered keys are voided and
never sold again; a grant already redeemed is flagged. Every refund is a row in `refunds` (amount in minor
units, currency, reason, actor, time, source) for reconciliation, written in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select

from orders.allocation import release_card_keys, void_card_keys
from orders.events import OrderError, actor_label, set_status
from orders.fulfilment import check_stock_alerts, order_grants, order_lines
from orders.models import REFUND_SOURCES, REFUNDABLE_STATUSES, Grant, Order, OrderLine, Refund
from saas import money
from saas.events import publish
from saas.extensions import db, immediate_transaction, is_postgres
from saas.timeutil import utcnow
from tenants import audit
from tenants.audit import current_actor
from tenants.scoping import current_tenant_id

UNDELIVERED = ("pending", "reserved", "backordered", "processing", "failed")


@dataclass
class RefundRequest:
    """What to refund: the whole order, one line, or some grants; how much (default: their share); why."""

    order_id: int
    reason: str
    source: str = "back_office"
    amount: int | None = None
    line_id: int | None = None
    grant_ids: list[int] = field(default_factory=list)
    external_id: str | None = None
    actor: str | None = None
    revoke: bool = True  # False: book the money only (a channel's partial refund); the rights stay


def grant_share(line: OrderLine, grant: Grant) -> int:
    """Return the part of the line's unit price a grant stands for (the first item takes the remainder)."""
    items = max(1, len(line.rights_per_unit()))
    share = line.unit_price // items
    return share + (line.unit_price - share * items if grant.item_index == 0 else 0)


def _locked_order(order_id: int) -> Order:
    statement = select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    if is_postgres():
        statement = statement.with_for_update()
    order = db.session.scalar(statement)
    if order is None:
        raise OrderError(_("Unknown order."))
    return order


def _targets(
    request: RefundRequest, grants: list[Grant], lines: dict[int, OrderLine]
) -> tuple[str, list[Grant]]:
    if request.grant_ids:
        wanted = set(request.grant_ids)
        chosen = [g for g in grants if g.id in wanted]
        if len(chosen) != len(wanted):
            raise OrderError(_("Those grants do not belong to this order."))
        return "grants", chosen
    if request.line_id is not None:
        if request.line_id not in lines:
            raise OrderError(_("That line does not belong to this order."))
        return "line", [g for g in grants if g.order_line_id == request.line_id]
    return "order", grants


def _default_amount(
    scope: str, order: Order, request: RefundRequest, targets: list[Grant], lines: dict[int, OrderLine]
) -> int:
    if scope == "order":
        return order.refundable_amount
    if scope == "line":
        line = lines[request.line_id or 0]
        return max(0, line.total - line.refunded_amount)
    return sum(
        grant_share(lines[g.order_line_id], g) - g.refunded_amount for g in targets if g.refunded_amount == 0
    )


def _revoke(targets: list[Grant], reason: str) -> tuple[int, int, int, set[int]]:
    """Cancel undelivered grants, revoke delivered ones, flag redeemed ones; return the counts."""
    now = utcnow()
    cancelled = revoked = flagged = 0
    release: list[int] = []
    void: list[int] = []
    rights: set[int] = set()
    for grant in targets:
        if grant.status in UNDELIVERED:
            if grant.status == "reserved" and grant.card_key_id is not None:
                release.append(grant.card_key_id)  # back to stock: the grant lets go of it
                rights.add(grant.right_id)
                grant.card_key_id, grant.unit_cost = None, 0
            grant.status, grant.cancelled_at = "cancelled", now
            grant.topup_state = "cancelled" if grant.kind == "topup" else grant.topup_state
            cancelled += 1
        elif grant.status == "delivered":
            if grant.card_key_id is not None:
                void.append(grant.card_key_id)
            grant.status, grant.revoked_at = "revoked", now
            revoked += 1
        elif grant.status == "redeemed":
            grant.flag = "refunded_after_redemption"
            flagged += 1
    release_card_keys(release)
    void_card_keys(void, f"refunded: {reason}")
    return cancelled, revoked, flagged, rights


def _spread(
    amount: int, scope: str, targets: list[Grant], lines: dict[int, OrderLine], request: RefundRequest
) -> None:
    """Book the refunded amount on the lines (and grants) it concerns, never beyond what each took."""
    if scope == "line":
        lines[request.line_id or 0].refunded_amount += amount
        return
    if scope == "grants":
        left = amount
        for grant in targets:
            part = min(left, grant_share(lines[grant.order_line_id], grant))
            grant.refunded_amount += part
            lines[grant.order_line_id].refunded_amount += part
            left -= part
        if left and targets:
            lines[targets[0].order_line_id].refunded_amount += left
        return
    left = amount
    for line in lines.values():
        part = min(left, max(0, line.total - line.refunded_amount))
        line.refunded_amount += part
        left -= part


def refund(request: RefundRequest) -> Refund:
    """Refund an order, a line or grants, exactly once per channel refund id; return the refund row."""
    if not request.reason.strip():
        raise OrderError(_("Say why the money is refunded."))
    if request.source not in REFUND_SOURCES:
        raise OrderError(_("Unknown refund source."))
    label = actor_label(request.actor)
    with immediate_transaction(db.session()):
        if request.external_id:
            known = db.session.scalar(
                select(Refund).where(
                    Refund.source == request.source, Refund.external_id == request.external_id
                )
            )
            if known is not None:
                db.session.commit()
                return known
        order = _locked_order(request.order_id)
        try:
            row, rights = _refund_locked(order, request, label)
            event = {
                "refund_id": str(row.id),
                "order_id": str(order.id),
                "amount": row.amount,
                "currency": row.currency,
                "reason": row.reason,
                "order_status": order.status,
            }
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    publish("order.refunded", current_tenant_id(), event, key=f"order.refunded:{event['refund_id']}")
    check_stock_alerts(rights)
    return row


def _refund_locked(order: Order, request: RefundRequest, label: str) -> tuple[Refund, set[int]]:
    if order.status not in REFUNDABLE_STATUSES:
        raise OrderError(_("This order cannot be refunded (it is %(status)s).", status=order.status))
    lines = {line.id: line for line in order_lines(order.id)}
    grants = order_grants(order.id, lock=True)
    scope, targets = _targets(request, grants, lines)
    if not request.revoke:
        targets = []
    amount = (
        request.amount
        if request.amount is not None
        else _default_amount(scope, order, request, targets, lines)
    )
    if amount < 0 or amount > order.refundable_amount:
        raise OrderError(
            _(
                "Refund between 0 and %(max)s.",
                max=money.format_money(order.refundable_amount, order.currency),
            )
        )
    if amount == 0 and not targets:
        raise OrderError(_("Nothing to refund."))
    cancelled, revoked, flagged, rights = _revoke(targets, request.reason.strip())
    _spread(amount, scope, targets, lines, request)
    now = utcnow()
    order.refunded_amount += amount
    everything_back = request.revoke and all(g.status in ("cancelled", "revoked") for g in grants)
    fully = order.refunded_amount >= order.total or (scope == "order" and everything_back)
    set_status(order, "refunded" if fully else "partially_refunded", actor=label, reason=request.reason)
    if fully:
        order.refunded_at = now
    row = Refund(
        order_id=order.id,
        order_line_id=request.line_id,
        grant_ids=[str(g.id) for g in targets] if scope == "grants" else [],
        scope=scope,
        amount=amount,
        currency=order.currency,
        reason=request.reason.strip(),
        source=request.source,
        external_id=request.external_id,
        actor=label,
        actor_user_id=current_actor()[0],
        created_at=now,
    )
    db.session.add(row)
    audit.record(
        "order.refunded",
        "order",
        order.id,
        reason=request.reason,
        amount=amount,
        currency=order.currency,
        scope=scope,
        source=request.source,
        cancelled=cancelled,
        revoked=revoked,
        flagged=flagged,
    )
    return row, rights


def refund_from_channel(
    tenant_order_id: int,
    *,
    amount: int | None,
    reason: str,
    external_id: str,
    channel: str,
    revoke: bool = True,
) -> Refund:
    """Refund reported by a sales channel (idempotent per the channel's refund id).

    `revoke=False` books a partial refund's money and leaves the rights delivered; the refund that
    completes the order revokes them.
    """
    return refund(
        RefundRequest(
            order_id=tenant_order_id,
            reason=reason,
            source="channel",
            amount=amount,
            external_id=f"{channel}:{external_id}",
            actor=f"channel {channel}",
            revoke=revoke,
        )
    )


def refunds_of(order_id: int) -> list[Refund]:
    """Return an order's refunds, oldest first."""
    return list(
        db.session.scalars(select(Refund).where(Refund.order_id == order_id).order_by(Refund.created_at))
    )


def refund_total(order_id: int) -> int:
    """Return how much of an order was refunded, in minor units."""
    order = db.session.get(Order, (current_tenant_id(), order_id))
    return order.refunded_amount if order is not None else 0
