"""Back-office pages of subscriptions: the list, a subscription, support-assisted cancel and undo, manual
renewals, and each renewable plan's policy. Thin: parse, call a service, render."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_required

from catalog.models import Plan
from catalog.services import CatalogError, read_amount
from orders.subscriptions import cancellation, policy, reminders, services
from orders.subscriptions.forms import CancelForm, PolicyForm, RenewForm
from orders.subscriptions.models import STATUSES, Subscription
from orders.subscriptions.services import SubscriptionError
from saas import money
from saas.extensions import db
from saas.timeutil import utcnow
from tenants import roles
from tenants.audit import current_actor
from tenants.context import requires
from tenants.lookup import get_or_404

bp = Blueprint("subscriptions", __name__, url_prefix="/t/<tenant_slug>/subscriptions")
PAGE_SIZE = 50
WITHIN_CHOICES = (7, 14, 30, 90)


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    return int(raw) if raw.isdigit() else None


def _flash_form_errors(form: CancelForm | RenewForm) -> None:
    for field, errors in form.errors.items():
        label = getattr(form, str(field)).label.text
        for error in errors:
            flash(f"{label}: {error}", "error")


@bp.route("")
@login_required
@requires(roles.ORDERS_VIEW)
def subscriptions() -> ResponseReturnValue:
    """List subscriptions with filters: status, plan, channel, renewing within N days."""
    status = request.args.get("status", "")
    status = status if status in STATUSES else ""
    plan_id, within = _int_arg("plan_id"), _int_arg("within")
    channel = request.args.get("channel", "").strip()
    page = max(1, _int_arg("page") or 1)
    statement = services.subscriptions_query(
        status=status, plan_id=plan_id, channel=channel, renewing_within_days=within
    )
    rows = list(
        db.session.scalars(
            statement.order_by(Subscription.current_period_end, Subscription.id)
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
    )
    return render_template(
        "subscriptions/list.html",
        subscriptions=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
        status=status,
        plan_id=plan_id,
        channel=channel,
        within=within,
        statuses=STATUSES,
        plans=[plan for plan, _policy in policy.renewable_plans()],
        channels=services.channels_in_use(),
        within_choices=WITHIN_CHOICES,
        customers={s.id: services.customer_of(s) for s in rows[:PAGE_SIZE]},
    )


@bp.route("/<int:subscription_id>")
@login_required
@requires(roles.ORDERS_VIEW)
def subscription(subscription_id: int) -> ResponseReturnValue:
    """Show a subscription: its periods and their rights, renewals, reminders and cancellation history."""
    found = get_or_404(Subscription, subscription_id)
    periods = services.periods_of(found.id)
    return render_template(
        "subscriptions/subscription.html",
        subscription=found,
        customer=services.customer_of(found),
        periods=[(period, services.period_grants(period)) for period in periods],
        renewals=services.renewals_of(found.id),
        reminders=reminders.reminders_of(found.id),
        cancellations=cancellation.cancellations_of(found.id),
        pending=cancellation.pending_cancellation(found.id),
        quote=cancellation.quote_cancel_now(found) if found.is_live else None,
        grace_end=services.grace_end(found),
        policy=policy.policy_for(found.plan_id, found.period_unit),
        next_period=services.next_period_preview(found),
        cancel_form=CancelForm(),
        renew_form=RenewForm(amount=money.to_text(found.renewal_amount, found.currency)),
        now=utcnow(),
        reason_label=cancellation.reason_label,
    )


@bp.route("/<int:subscription_id>/cancel", methods=["POST"])
@login_required
@requires(roles.SUBSCRIPTIONS_CANCEL)
def cancel(subscription_id: int) -> ResponseReturnValue:
    """Cancel on the customer's behalf (support), now or at the period end, with the reason."""
    found = get_or_404(Subscription, subscription_id)
    form = CancelForm()
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return redirect(url_for("subscriptions.subscription", subscription_id=found.id))
    act = cancellation.cancel_now if form.when.data == "now" else cancellation.cancel_at_period_end
    try:
        done = act(
            found.id,
            source="support",
            reason_code=form.reason_code.data or None,
            reason_text=form.reason_text.data or "",
        )
    except SubscriptionError as error:
        flash(str(error), "error")
    else:
        flash(_("Cancelled: ticket %(ticket)s.", ticket=done.ticket_number), "info")
    return redirect(url_for("subscriptions.subscription", subscription_id=found.id))


@bp.route("/<int:subscription_id>/undo", methods=["POST"])
@login_required
@requires(roles.SUBSCRIPTIONS_CANCEL)
def undo(subscription_id: int) -> ResponseReturnValue:
    """Turn auto-renew back on before the period end (undo a cancel-at-period-end)."""
    found = get_or_404(Subscription, subscription_id)
    try:
        cancellation.undo_cancel(found.id, source="support")
    except SubscriptionError as error:
        flash(str(error), "error")
    else:
        flash(_("The subscription renews again."), "info")
    return redirect(url_for("subscriptions.subscription", subscription_id=found.id))


@bp.route("/<int:subscription_id>/renew", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def renew(subscription_id: int) -> ResponseReturnValue:
    """Record a renewal payment received by hand; the rights come through a new paid order."""
    found = get_or_404(Subscription, subscription_id)
    form = RenewForm()
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return redirect(url_for("subscriptions.subscription", subscription_id=found.id))
    try:
        amount = read_amount(form.amount.data, found.currency) or 0
        outcome = services.renew(
            found.id,
            paid_at=utcnow(),
            amount=amount,
            currency=found.currency,
            channel="manual",
            idempotency_key=f"manual:{form.reference.data.strip()}",
        )
    except (SubscriptionError, CatalogError) as error:
        flash(str(error), "error")
    else:
        if outcome.created:
            flash(_("Renewal recorded: period %(n)s.", n=outcome.renewal.period_number), "info")
        else:
            flash(_("That payment reference was recorded already; nothing changed."), "info")
    return redirect(url_for("subscriptions.subscription", subscription_id=found.id))


@bp.route("/policies")
@login_required
@requires(roles.CATALOG_VIEW)
def policies() -> ResponseReturnValue:
    """List the renewable plans with their grace days, reminders and refund policy."""
    return render_template("subscriptions/policies.html", plans=policy.renewable_plans())


@bp.route("/policies/<int:plan_id>", methods=["GET", "POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def edit_policy(plan_id: int) -> ResponseReturnValue:
    """Edit one plan's subscription policy."""
    plan = get_or_404(Plan, plan_id)
    current = policy.policy_for(plan.id, plan.period_unit)
    form = PolicyForm(
        data={
            "grace_days": current.grace_days,
            "reminder_offsets": ", ".join(str(o) for o in current.reminder_offsets),
            "cancel_now_refund": current.cancel_now_refund,
        }
    )
    if form.validate_on_submit():
        try:
            offsets = policy.parse_offsets(form.reminder_offsets.data or "")
            policy.save_policy(
                plan,
                grace_days=form.grace_days.data or 0,
                reminder_offsets=offsets,
                cancel_now_refund=form.cancel_now_refund.data,
                actor=_actor(),
            )
        except policy.PolicyError as error:
            flash(str(error), "error")
        else:
            flash(_("Policy saved."), "info")
            return redirect(url_for("subscriptions.policies"))
    return render_template("subscriptions/policy_form.html", form=form, plan=plan, policy=current)


def _actor() -> str:
    return current_actor()[1]
