"""Back-office pages of risk control: the review queue, the anomalies page, blocklists and rules."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from orders.events import OrderError
from orders.models import Customer, Order
from orders.risk import rules, services
from orders.risk.forms import RULE_LABELS, BlockForm, DecisionForm, RuleForm
from orders.risk.models import RULE_KINDS, BlocklistEntry, RiskFlag
from saas.extensions import db
from tenants import roles
from tenants.context import requires
from tenants.lookup import get_or_404

bp = Blueprint("risk", __name__, url_prefix="/t/<tenant_slug>/risk")


@bp.route("/")
@login_required
@requires(roles.ORDERS_VIEW)
def review_queue() -> ResponseReturnValue:
    """List held orders with their reasons and open flags, with approve / reject / resolve."""
    held = services.held_orders()
    customer_ids = {o.customer_id for o in held if o.customer_id}
    customers = (
        {c.id: c for c in db.session.scalars(select(Customer).where(Customer.id.in_(customer_ids)))}
        if customer_ids
        else {}
    )
    return render_template(
        "risk/review_queue.html",
        held=held,
        customers=customers,
        flags=services.open_flags(),
        form=DecisionForm(),
    )


@bp.route("/orders/<int:held_order_id>/approve", methods=["POST"])
@login_required
@requires(roles.ORDERS_REFUND)
def approve(held_order_id: int) -> ResponseReturnValue:
    """Approve a held order: fulfil it (paid) or let it be paid (unpaid)."""
    get_or_404(Order, held_order_id)
    form = DecisionForm()
    try:
        result = services.approve(held_order_id, note=form.note.data or "")
    except (OrderError, services.RiskError) as error:
        flash(str(error), "error")
    else:
        flash(_("Approved.") if result.acted else _("The order is no longer held."), "info")
    return redirect(url_for("risk.review_queue"))


@bp.route("/orders/<int:held_order_id>/reject", methods=["POST"])
@login_required
@requires(roles.ORDERS_REFUND)
def reject(held_order_id: int) -> ResponseReturnValue:
    """Reject a held order: refund it (paid) or cancel it (unpaid)."""
    get_or_404(Order, held_order_id)
    form = DecisionForm()
    try:
        status = services.reject(held_order_id, note=form.note.data or "")
    except (OrderError, services.RiskError) as error:
        flash(str(error), "error")
    else:
        flash(_("Rejected: the order is %(s)s.", s=status), "info")
    return redirect(url_for("risk.review_queue"))


@bp.route("/flags/<int:risk_flag_id>/resolve", methods=["POST"])
@login_required
@requires(roles.ORDERS_REFUND)
def resolve_flag(risk_flag_id: int) -> ResponseReturnValue:
    """Dismiss or confirm a flag with a note."""
    get_or_404(RiskFlag, risk_flag_id)
    form = DecisionForm()
    decision = "confirmed" if request.form.get("decision") == "confirmed" else "dismissed"
    try:
        services.resolve_flag(risk_flag_id, status=decision, note=form.note.data or "")
    except services.RiskError as error:
        flash(str(error), "error")
    else:
        flash(_("Flag resolved."), "info")
    return redirect(url_for("risk.review_queue"))


@bp.route("/anomalies")
@login_required
@requires(roles.ORDERS_VIEW)
def anomalies() -> ResponseReturnValue:
    """Show the latest flags: redemptions after refund, keys revealed from many addresses, bursts."""
    return render_template("risk/anomalies.html", flags=services.recent_flags())


@bp.route("/settings")
@login_required
@requires(roles.SETTINGS_MANAGE)
def settings() -> ResponseReturnValue:
    """Show the blocklist and the velocity rules, with forms to change them."""
    current = {kind: rules.rule(kind) for kind in RULE_KINDS}
    return render_template(
        "risk/settings.html",
        entries=services.blocklist(),
        block_form=BlockForm(),
        rule_form=RuleForm(),
        current=current,
        labels=RULE_LABELS,
        form=DecisionForm(),
    )


@bp.route("/blocklist", methods=["POST"])
@login_required
@requires(roles.SETTINGS_MANAGE)
def add_block() -> ResponseReturnValue:
    """Block an email, domain, phone, IP or CIDR, device or channel customer id."""
    form = BlockForm()
    if form.validate_on_submit():
        try:
            services.add_block(form.kind.data or "", form.value.data or "", reason=form.reason.data or "")
        except services.RiskError as error:
            flash(str(error), "error")
        else:
            flash(_("Blocked."), "info")
    else:
        flash(_("Choose a kind and give a value and a reason."), "error")
    return redirect(url_for("risk.settings"))


@bp.route("/blocklist/<int:block_entry_id>/remove", methods=["POST"])
@login_required
@requires(roles.SETTINGS_MANAGE)
def remove_block(block_entry_id: int) -> ResponseReturnValue:
    """Lift a block."""
    get_or_404(BlocklistEntry, block_entry_id)
    form = DecisionForm()
    try:
        services.remove_block(block_entry_id, reason=form.note.data or "")
    except services.RiskError as error:
        flash(str(error), "error")
    else:
        flash(_("Block lifted."), "info")
    return redirect(url_for("risk.settings"))


@bp.route("/rules", methods=["POST"])
@login_required
@requires(roles.SETTINGS_MANAGE)
def save_rule() -> ResponseReturnValue:
    """Set a velocity rule's threshold and window, or switch it off."""
    form = RuleForm()
    if form.validate_on_submit():
        try:
            services.save_rule(
                services.RuleSetting(
                    form.kind.data or "",
                    int(form.threshold.data or 0),
                    int(form.window_minutes.data or 0),
                    bool(form.active.data),
                )
            )
        except services.RiskError as error:
            flash(str(error), "error")
        else:
            flash(_("Rule saved."), "info")
    else:
        flash(_("Give a threshold and a window in minutes."), "error")
    return redirect(url_for("risk.settings"))
