"""The customer's self-service page for one subscription, reached by the signed link in every mail.

Reading needs only the link; cancelling, and undoing a cancellation, need the one-time code sent to the
customer first (SMS to a phone, mail to an email). The tenant is bound for the request from the link, so
every read is that tenant's.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from orders.subscriptions import cancellation, selfservice, services
from orders.subscriptions.forms import CancelForm, CodeForm
from orders.subscriptions.models import Subscription
from orders.subscriptions.services import SubscriptionError
from saas.extensions import db
from saas.security import customer_action_rate, customer_page_rate, limiter
from tenants.context import bind_request_tenant
from tenants.lookup import get_or_404
from tenants.models import Tenant

bp = Blueprint("my_subscriptions", __name__, url_prefix="/my/subscriptions")
CUSTOMER_ACTOR = "customer (self-service)"


def _subscription_from_token(token: str) -> Subscription:
    """Resolve the link: bind its tenant and return its subscription; 404 when invalid or expired."""
    try:
        tenant_id, subscription_id = selfservice.read_token(token)
    except selfservice.LinkInvalid:
        abort(404)
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        abort(404)
    bind_request_tenant(tenant)
    return get_or_404(Subscription, subscription_id)


def _back(token: str) -> ResponseReturnValue:
    return redirect(url_for("my_subscriptions.page", token=token))


@bp.route("/<token>")
@limiter.limit(customer_page_rate, methods=["GET"])
def page(token: str) -> ResponseReturnValue:
    """Show the subscription, exactly when each kind of cancellation would take effect, and the receipts."""
    found = _subscription_from_token(token)
    verified = selfservice.is_verified(session, found)
    return render_template(
        "subscriptions/my_subscription.html",
        subscription=found,
        token=token,
        verified=verified,
        customer=services.customer_of(found),
        cancellations=cancellation.cancellations_of(found.id),
        pending=cancellation.pending_cancellation(found.id),
        quote=cancellation.quote_cancel_now(found) if found.is_live else None,
        cancel_form=CancelForm(),
        code_form=CodeForm(),
        when=lambda m, f="%Y-%m-%d %H:%M": selfservice.when_text(found, m, f),
        today=selfservice.today_in_zone(found),
        reason_label=cancellation.reason_label,
    )


@bp.route("/<token>/code", methods=["POST"])
@limiter.limit(customer_action_rate)
def send_code(token: str) -> ResponseReturnValue:
    """Send a one-time code to the customer's phone (SMS) and email (mail)."""
    found = _subscription_from_token(token)
    try:
        sent_to = selfservice.send_code(found)
    except selfservice.CodeRefused as error:
        flash(str(error), "error")
    else:
        flash(
            _("We sent a six-digit code to %(address)s. It is valid for 10 minutes.", address=sent_to), "info"
        )
    return _back(token)


@bp.route("/<token>/verify", methods=["POST"])
@limiter.limit(customer_action_rate)
def verify(token: str) -> ResponseReturnValue:
    """Check the code; a right code lets this browser act on the subscription for a while."""
    found = _subscription_from_token(token)
    form = CodeForm()
    if not form.validate_on_submit():
        flash(_("Enter the six-digit code we sent you."), "error")
        return _back(token)
    try:
        selfservice.check_code(found, form.code.data or "")
    except selfservice.CodeRefused as error:
        flash(str(error), "error")
    else:
        selfservice.mark_verified(session, found)
        flash(_("Thank you: you can now change your subscription."), "info")
    return _back(token)


@bp.route("/<token>/cancel", methods=["POST"])
@limiter.limit(customer_action_rate)
def cancel(token: str) -> ResponseReturnValue:
    """Cancel, at the period end or now, with an optional reason (after the code)."""
    found = _subscription_from_token(token)
    if not selfservice.is_verified(session, found):
        flash(_("Confirm it is you with the code we send you first."), "error")
        return _back(token)
    form = CancelForm()
    if not form.validate_on_submit():
        flash(_("Choose when the cancellation takes effect."), "error")
        return _back(token)
    act = cancellation.cancel_now if form.when.data == "now" else cancellation.cancel_at_period_end
    try:
        done = act(
            found.id,
            source="customer",
            reason_code=form.reason_code.data or None,
            reason_text=form.reason_text.data or "",
            actor=CUSTOMER_ACTOR,
        )
    except SubscriptionError as error:
        flash(str(error), "error")
    else:
        flash(
            _("Done. Your receipt number is %(ticket)s; we sent you a copy.", ticket=done.ticket_number),
            "info",
        )
    return _back(token)


@bp.route("/<token>/undo", methods=["POST"])
@limiter.limit(customer_action_rate)
def undo(token: str) -> ResponseReturnValue:
    """Turn auto-renew back on before the period end (after the code)."""
    found = _subscription_from_token(token)
    if not selfservice.is_verified(session, found):
        flash(_("Confirm it is you with the code we send you first."), "error")
        return _back(token)
    try:
        cancellation.undo_cancel(found.id, source="customer", actor=CUSTOMER_ACTOR)
    except SubscriptionError as error:
        flash(str(error), "error")
    else:
        flash(_("Your subscription renews again."), "info")
    return _back(token)
