"""Each renewable plan's subscription policy: grace days, reminder offsets, the cancel-now refund policy.

Kept in `subscription_plan_settings`, keyed by plan, so the catalog's models stay as they are. A plan with no
row gets the defaults: 3 grace days, a reminder 3 days before the period end (7 for yearly plans), and no
refund on cancel-now.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select

from catalog.models import Plan
from orders.subscriptions.models import DEFAULT_GRACE_DAYS, REFUND_POLICIES, SubscriptionPlanSettings
from saas.extensions import db
from tenants import audit

MAX_GRACE_DAYS = 90
MAX_OFFSET_DAYS = 90
MAX_OFFSETS = 5


class PolicyError(ValueError):
    """A refused policy change (a value out of range)."""


@dataclass(frozen=True)
class Policy:
    """What a plan's subscriptions follow."""

    grace_days: int
    reminder_offsets: tuple[int, ...]  # days before the period end, largest first
    cancel_now_refund: str  # none or prorated
    customised: bool = False


def default_offsets(period_unit: str) -> tuple[int, ...]:
    """Return the default reminder offsets: 7 days before for yearly plans, 3 otherwise."""
    return (7,) if period_unit == "year" else (3,)


def settings_row(plan_id: int) -> SubscriptionPlanSettings | None:
    """Return the plan's settings row, if it has one."""
    return db.session.scalar(
        select(SubscriptionPlanSettings).where(SubscriptionPlanSettings.plan_id == plan_id)
    )


def policy_for(plan_id: int, period_unit: str) -> Policy:
    """Return the policy of a plan (its row, else the defaults for its period unit)."""
    row = settings_row(plan_id)
    if row is None:
        return Policy(DEFAULT_GRACE_DAYS, default_offsets(period_unit), "none")
    offsets = tuple(sorted({int(o) for o in row.reminder_offsets or []}, reverse=True))
    return Policy(row.grace_days, offsets, row.cancel_now_refund, customised=True)


def parse_offsets(text: str) -> list[int]:
    """Read reminder offsets typed as "7, 3, 1" (days before the period end); empty means none."""
    values: set[int] = set()
    for part in text.replace("，", ",").replace(" ", ",").split(","):
        if not part.strip():
            continue
        if not part.strip().isdigit():
            raise PolicyError(_("Reminder offsets are whole numbers of days, separated by commas."))
        values.add(int(part))
    return sorted(values, reverse=True)


def save_policy(
    plan: Plan, *, grace_days: int, reminder_offsets: list[int], cancel_now_refund: str, actor: str
) -> SubscriptionPlanSettings:
    """Validate and store a plan's subscription policy (audited); commits."""
    if not 0 <= grace_days <= MAX_GRACE_DAYS:
        raise PolicyError(_("Grace days run from 0 to %(n)s.", n=MAX_GRACE_DAYS))
    if len(reminder_offsets) > MAX_OFFSETS or any(not 1 <= o <= MAX_OFFSET_DAYS for o in reminder_offsets):
        raise PolicyError(
            _(
                "Up to %(count)s reminders, each 1 to %(n)s days before the period end.",
                count=MAX_OFFSETS,
                n=MAX_OFFSET_DAYS,
            )
        )
    if cancel_now_refund not in REFUND_POLICIES:
        raise PolicyError(_("Unknown refund policy."))
    row = settings_row(plan.id)
    if row is None:
        row = SubscriptionPlanSettings(plan_id=plan.id)
        db.session.add(row)
    before = {
        "grace_days": row.grace_days,
        "reminder_offsets": list(row.reminder_offsets or []),
        "cancel_now_refund": row.cancel_now_refund,
    }
    row.grace_days = grace_days
    row.reminder_offsets = sorted(set(reminder_offsets), reverse=True)
    row.cancel_now_refund = cancel_now_refund
    row.updated_by = actor[:200]
    audit.record(
        "subscription.policy_changed",
        "plan",
        plan.id,
        before=before,
        after={
            "grace_days": grace_days,
            "reminder_offsets": row.reminder_offsets,
            "cancel_now_refund": cancel_now_refund,
        },
    )
    db.session.commit()
    return row


def renewable_plans() -> list[tuple[Plan, Policy]]:
    """Return the tenant's renewable plans with their policies, in catalog order."""
    plans = db.session.scalars(
        select(Plan).where(Plan.renewable.is_(True)).order_by(Plan.bundle_id, Plan.position, Plan.id)
    )
    return [(plan, policy_for(plan.id, plan.period_unit)) for plan in plans]
