"""Risk-control use cases: review held orders (approve fulfils once, reject refunds or cancels), manage
blocklists and velocity rules, and resolve flags. Every change is audited in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from orders import refunds
from orders.customers import normalise_phone
from orders.events import OrderError, actor_label, set_status, transition
from orders.fulfilment import FulfilmentResult, after_fulfilment, check_stock_alerts, fulfil_claimed
from orders.models import Order
from orders.risk.models import BLOCK_KINDS, FLAG_STATUSES, RULE_KINDS, BlocklistEntry, RiskFlag, RiskRule
from orders.risk.rules import normalise_ip
from saas.extensions import db, immediate_transaction
from saas.timeutil import utcnow
from tenants import audit
from tenants.audit import current_actor
from tenants.scoping import current_tenant_id


class RiskError(ValueError):
    """A user-facing refusal of a risk-control action."""


# ---------------------------------------------------------------- the review queue


def held_orders(limit: int = 200) -> list[Order]:
    """Return the bound tenant's held orders, oldest first."""
    return list(
        db.session.scalars(
            select(Order).where(Order.status == "held").order_by(Order.created_at, Order.id).limit(limit)
        )
    )


def open_flags(limit: int = 200) -> list[RiskFlag]:
    """Return the flags nobody has resolved yet, newest first."""
    return list(
        db.session.scalars(
            select(RiskFlag)
            .where(RiskFlag.status == "open")
            .order_by(RiskFlag.created_at.desc(), RiskFlag.id.desc())
            .limit(limit)
        )
    )


def recent_flags(limit: int = 200) -> list[RiskFlag]:
    """Return the latest flags of any status (the anomalies page)."""
    return list(
        db.session.scalars(
            select(RiskFlag).order_by(RiskFlag.created_at.desc(), RiskFlag.id.desc()).limit(limit)
        )
    )


def _note(note: str) -> str:
    if not note.strip():
        raise RiskError(_("Write a note saying why."))
    return note.strip()[:2000]


def approve(order_id: int, *, note: str, actor: str | None = None) -> FulfilmentResult:
    """Release a held order: a paid one is fulfilled exactly once, an unpaid one waits for payment again.

    The claim is one conditional UPDATE from `held`; of two concurrent approvals only one fulfils.
    """
    note = _note(note)
    label = actor_label(actor)
    with immediate_transaction(db.session()):
        order = db.session.get(Order, (current_tenant_id(), order_id), populate_existing=True)
        if order is None:
            raise OrderError(_("Unknown order."))
        to_status = "pending" if order.paid_at is None else "paid"
        if not transition(order_id, "held", to_status, actor=label, reason=note, risk_reviewed_at=utcnow()):
            db.session.commit()
            return FulfilmentResult(order_id, False)
        try:
            audit.record("risk.order_approved", "order", order_id, reason=note, was=order.hold_reason)
            if to_status == "pending":
                db.session.commit()
                return FulfilmentResult(order_id, True, "pending")
            transition(order_id, "paid", "fulfilling", actor=label)
            (result,) = fulfil_claimed([order_id], actor=label, reason=note)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    after_fulfilment([result])
    return result


def reject(order_id: int, *, note: str, actor: str | None = None) -> str:
    """Turn a held order down: refund it when paid, cancel it when unpaid; return the new status.

    One transaction with the order locked: a concurrent approval either wins first (then this refuses)
    or waits and finds the order no longer held.
    """
    note = _note(note)
    label = actor_label(actor)
    rights: set[int] = set()
    with immediate_transaction(db.session()):
        order = refunds._locked_order(order_id)
        if order.status != "held":
            db.session.commit()
            raise RiskError(_("Only held orders can be rejected (this one is %(s)s).", s=order.status))
        try:
            if order.paid_at is not None and order.refundable_amount > 0:
                request = refunds.RefundRequest(
                    order_id=order_id, reason=_("rejected in risk review: %(n)s", n=note), actor=label
                )
                _row, rights = refunds._refund_locked(order, request, label)
            else:
                set_status(order, "cancelled", actor=label, reason=note)
                order.cancelled_at = utcnow()
            status = order.status
            audit.record("risk.order_rejected", "order", order_id, reason=note, outcome=status)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    check_stock_alerts(rights)
    return status


def resolve_flag(flag_id: int, *, status: str, note: str) -> RiskFlag:
    """Close a flag as dismissed (harmless) or confirmed (fraud), with a note; audited."""
    note = _note(note)
    if status not in FLAG_STATUSES or status == "open":
        raise RiskError(_("Unknown flag decision."))
    with immediate_transaction(db.session()):
        changed = db.session.execute(
            update(RiskFlag)
            .where(RiskFlag.id == flag_id, RiskFlag.status == "open")
            .values(status=status, note=note, resolved_by=actor_label(), resolved_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not changed:
            db.session.commit()
            raise RiskError(_("This flag was resolved already."))
        audit.record("risk.flag_resolved", "risk_flag", flag_id, reason=note, status=status)
        db.session.commit()
    flag = db.session.get(RiskFlag, (current_tenant_id(), flag_id), populate_existing=True)
    assert flag is not None
    return flag


# ---------------------------------------------------------------- blocklists


def normalise_block(kind: str, value: str) -> str:
    """Return the stored form of a blocklist value; RiskError when it is not valid for its kind."""
    value = value.strip()
    if kind not in BLOCK_KINDS:
        raise RiskError(_("Unknown blocklist kind."))
    if not value or len(value) > 254:
        raise RiskError(_("Give a value of at most 254 characters."))
    if kind == "ip":
        try:
            return normalise_ip(value)
        except ValueError as error:
            raise RiskError(_("%(v)s is not an IP address or CIDR range.", v=value)) from error
    if kind == "email" and "@" not in value:
        raise RiskError(_("%(v)s is not an email address.", v=value))
    if kind == "email_domain":
        value = value.lstrip("@")
    if kind == "phone":  # stored as customers' phones are (E.164 when readable), so the two match
        return normalise_phone(value) or value
    return value.lower()


def add_block(kind: str, value: str, *, reason: str) -> BlocklistEntry:
    """Block a value (its future orders are held); audited with who and why."""
    reason = _note(reason)
    stored = normalise_block(kind, value)
    user_id, label = current_actor()
    with immediate_transaction(db.session()):
        entry = BlocklistEntry(
            kind=kind,
            value=stored,
            reason=reason,
            added_by=label,
            added_by_user_id=user_id,
            created_at=utcnow(),
        )
        db.session.add(entry)
        audit.record("risk.blocked", "risk_blocklist", entry.id, reason=reason, kind=kind, value=stored)
        try:
            db.session.commit()
        except IntegrityError as error:
            db.session.rollback()
            raise RiskError(_("%(v)s is blocked already.", v=stored)) from error
    return entry


def remove_block(entry_id: int, *, reason: str = "") -> None:
    """Lift a block; audited."""
    with immediate_transaction(db.session()):
        entry = db.session.get(BlocklistEntry, (current_tenant_id(), entry_id))
        if entry is None:
            raise RiskError(_("Unknown blocklist entry."))
        audit.record(
            "risk.unblocked",
            "risk_blocklist",
            entry_id,
            reason=reason or None,
            kind=entry.kind,
            value=entry.value,
        )
        db.session.delete(entry)
        db.session.commit()


def blocklist() -> list[BlocklistEntry]:
    """Return the bound tenant's blocklist, by kind then value."""
    return list(
        db.session.scalars(select(BlocklistEntry).order_by(BlocklistEntry.kind, BlocklistEntry.value))
    )


# ---------------------------------------------------------------- rules


@dataclass
class RuleSetting:
    """One rule as the settings form edits it."""

    kind: str
    threshold: int
    window_minutes: int
    active: bool


def save_rule(setting: RuleSetting) -> RiskRule:
    """Create or change a velocity rule; audited with the old and new values."""
    if setting.kind not in RULE_KINDS:
        raise RiskError(_("Unknown rule."))
    if not 1 <= setting.threshold <= 1_000_000 or not 1 <= setting.window_minutes <= 366 * 24 * 60:
        raise RiskError(_("Thresholds are 1 to 1,000,000; windows 1 minute to a year."))
    with immediate_transaction(db.session()):
        row = db.session.scalar(select(RiskRule).where(RiskRule.kind == setting.kind))
        before = None if row is None else [row.threshold, row.window_minutes, row.active]
        if row is None:
            row = RiskRule(kind=setting.kind)
            db.session.add(row)
        row.threshold, row.window_minutes, row.active = (
            setting.threshold,
            setting.window_minutes,
            setting.active,
        )
        row.updated_by, row.updated_at = actor_label(), utcnow()
        audit.record(
            "risk.rule_changed",
            "risk_rule",
            row.id,
            kind=setting.kind,
            before=before,
            after=[setting.threshold, setting.window_minutes, setting.active],
        )
        db.session.commit()
    return row
