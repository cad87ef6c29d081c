"""The 我的权益 portal of one shop: `/shop/<shop slug>/my`, signed in by a code or by a signed link.

Views are thin: the shop (tenant) is bound from the slug, the customer comes from the portal session of that
shop (`orders.portal.signin`), and every object is looked up as that customer's — another customer's or
another shop's is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from orders import delivery, redemption
from orders.events import OrderError
from orders.models import Customer, Order
from orders.portal import family, signin
from orders.subscriptions import cancellation
from orders.subscriptions.models import Subscription, SubscriptionCancellation
from orders.subscriptions.selfservice import when_text
from orders.subscriptions.services import SubscriptionError
from saas.extensions import db
from saas.security import customer_action_rate, customer_page_rate, limiter
from tenants.context import bind_request_tenant
from tenants.models import Tenant

bp = Blueprint("portal", __name__, url_prefix="/shop/<shop_slug>/my")
RECEIPT_ORDERS = 50


def _shop(slug: str) -> Tenant:
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        abort(404)
    bind_request_tenant(tenant)
    return tenant


def _customer(slug: str) -> tuple[Tenant, Customer | None, str]:
    """Bind the shop; return it, the customer signed in to its portal (or None) and how they signed in."""
    tenant = _shop(slug)
    found = signin.signed_in(session, tenant.id)
    if found is None:
        return tenant, None, ""
    customer = delivery.resolve_customer(tenant.id, found[0])
    return tenant, customer, found[1] if customer is not None else ""


def _signed_in_customer(slug: str) -> tuple[Tenant, Customer, str]:
    """The customer of this shop's portal; a visitor who is not signed in gets a 404 on actions."""
    tenant, customer, how = _customer(slug)
    if customer is None:
        abort(404)
    return tenant, customer, how


def _actor(customer: Customer) -> str:
    return f"customer {customer.email or customer.phone or customer.id} (portal)"


def _home(slug: str) -> ResponseReturnValue:
    return redirect(url_for("portal.page", shop_slug=slug))


@bp.route("")
@limiter.limit(customer_page_rate, methods=["GET"])
def page(shop_slug: str) -> ResponseReturnValue:
    """Show every right of the signed-in customer; a visitor gets the sign-in form."""
    tenant, customer, how = _customer(shop_slug)
    if customer is None:
        return render_template(
            "orders/portal_sign_in.html", tenant=tenant, address=request.args.get("address", "")
        )
    return render_template(
        "orders/portal.html", tenant=tenant, customer=customer, how=how, **_portal(customer)
    )


def _portal(customer: Customer) -> dict[str, Any]:
    subscriptions = list(
        db.session.scalars(
            select(Subscription)
            .where(Subscription.customer_id == customer.id)
            .order_by(Subscription.id.desc())
        )
    )
    return {
        "rights": delivery.customer_rights(customer),
        "sharing": family.sharing_of(customer),
        "shared": family.shared_rights(customer),
        "purchases": family.purchases_of(customer),
        "subscriptions": subscriptions,
        "pending": {s.id: cancellation.pending_cancellation(s.id) for s in subscriptions},
        "quotes": {s.id: cancellation.quote_cancel_now(s) for s in subscriptions if s.is_live},
        "orders": list(
            db.session.scalars(
                select(Order)
                .where(Order.customer_id == customer.id, Order.paid_at.is_not(None))
                .order_by(Order.id.desc())
                .limit(RECEIPT_ORDERS)
            )
        ),
        "cancellations": list(
            db.session.scalars(
                select(SubscriptionCancellation)
                .where(SubscriptionCancellation.subscription_id.in_([s.id for s in subscriptions]))
                .order_by(SubscriptionCancellation.requested_at.desc())
            )
        )
        if subscriptions
        else [],
        "when": lambda s, m, f="%Y-%m-%d %H:%M": when_text(s, m, f),
        "reason_label": cancellation.reason_label,
    }


@bp.route("/code", methods=["POST"])
@limiter.limit(customer_action_rate)
def send_code(shop_slug: str) -> ResponseReturnValue:
    """Send a six-digit code to the phone (SMS) or email (mail) typed in."""
    _shop(shop_slug)
    typed = request.form.get("address", "")
    try:
        address = signin.send_code(typed, ip=request.remote_addr)
    except signin.SignInRefused as error:
        flash(str(error), "error")
    else:
        flash(
            _(
                "If %(address)s is known to this shop, a six-digit code is on its way. It is valid for "
                "10 minutes.",
                address=address.masked,
            ),
            "info",
        )
    return redirect(url_for("portal.page", shop_slug=shop_slug, address=typed.strip()))


@bp.route("/verify", methods=["POST"])
@limiter.limit(customer_action_rate)
def verify(shop_slug: str) -> ResponseReturnValue:
    """Check the code and sign the customer in to this shop's portal."""
    _shop(shop_slug)
    typed = request.form.get("address", "")
    try:
        customer = signin.check_code(typed, request.form.get("code", ""))
    except signin.SignInRefused as error:
        flash(str(error), "error")
        return redirect(url_for("portal.page", shop_slug=shop_slug, address=typed.strip()))
    signin.sign_in(session, customer, how="code")
    return _home(shop_slug)


@bp.route("/sign-out", methods=["POST"])
def sign_out(shop_slug: str) -> ResponseReturnValue:
    """Forget this browser's customer of the shop."""
    tenant = _shop(shop_slug)
    signin.sign_out(session, tenant.id)
    flash(_("You are signed out."), "info")
    return _home(shop_slug)


# ---------------------------------------------------------------- rights


def _right_of(customer: Customer, grant_id: int) -> tuple[Any, family.SharedRight | None]:
    """Return the customer's own grant, or a right shared with them; 404 otherwise."""
    own = delivery.customer_grant(customer, grant_id)
    if own is not None:
        return own, None
    shared = family.shared_grant(customer, grant_id)
    if shared is None:
        abort(404)
    return shared.grant, shared


@bp.route("/grants/<int:grant_id>/reveal", methods=["POST"])
@limiter.limit(customer_action_rate)
def reveal(shop_slug: str, grant_id: int) -> ResponseReturnValue:
    """Return a right's code in full (JSON for the reveal and copy buttons); audited."""
    _tenant, customer, _how = _signed_in_customer(shop_slug)
    grant, shared = _right_of(customer, grant_id)
    if shared is not None and not shared.can_reveal:
        return jsonify({"code": "not_revealable", "message": _("This right cannot be shown.")}), 409
    try:
        value = delivery.reveal(grant, by=_actor(customer), ip=request.remote_addr)
    except OrderError as error:
        return jsonify({"code": "not_revealable", "message": str(error)}), 409
    return jsonify({"value": value})


@bp.route("/grants/<int:grant_id>/redeem", methods=["POST"])
@limiter.limit(customer_action_rate)
def redeem(shop_slug: str, grant_id: int) -> ResponseReturnValue:
    """Mark a right used (我已使用): the buyer's right, or a family member's own use of a shared one."""
    _tenant, customer, _how = _signed_in_customer(shop_slug)
    grant, shared = _right_of(customer, grant_id)
    if shared is not None:
        done = family.redeem_as_member(shared, customer, actor=_actor(customer))
    else:
        outcome = redemption.redeem_grant(
            grant.id, source="customer", actor=_actor(customer), ip=request.remote_addr
        )
        done = outcome.accepted
    flash(
        _("Marked as used.") if done else _("This right cannot be marked as used."),
        "info" if done else "error",
    )
    return _home(shop_slug)


# ---------------------------------------------------------------- subscriptions


def _subscription_of(customer: Customer, subscription_id: int) -> Subscription:
    found = db.session.get(Subscription, (customer.tenant_id, subscription_id))
    if found is None or found.customer_id != customer.id:
        abort(404)
    return found


def _needs_code(how: str, slug: str) -> ResponseReturnValue | None:
    """Changing a subscription needs a code-verified sign-in (a link in a mail is not enough)."""
    if how == "code":
        return None
    flash(_("To change a subscription, confirm it is you with a code first."), "error")
    return redirect(url_for("portal.page", shop_slug=slug, confirm=1))


@bp.route("/subscriptions/<int:subscription_id>/cancel", methods=["POST"])
@limiter.limit(customer_action_rate)
def cancel(shop_slug: str, subscription_id: int) -> ResponseReturnValue:
    """Cancel a subscription at its period end or now, with an optional reason."""
    _tenant, customer, how = _signed_in_customer(shop_slug)
    found = _subscription_of(customer, subscription_id)
    refused = _needs_code(how, shop_slug)
    if refused is not None:
        return refused
    act = cancellation.cancel_now if request.form.get("when") == "now" else cancellation.cancel_at_period_end
    try:
        done = act(
            found.id,
            source="customer",
            reason_code=request.form.get("reason_code") or None,
            reason_text=(request.form.get("reason_text") or "")[:2000],
            actor=_actor(customer),
        )
    except SubscriptionError as error:
        flash(str(error), "error")
    else:
        flash(_("Done. Your receipt number is %(ticket)s.", ticket=done.ticket_number), "info")
    return _home(shop_slug)


@bp.route("/subscriptions/<int:subscription_id>/undo", methods=["POST"])
@limiter.limit(customer_action_rate)
def undo(shop_slug: str, subscription_id: int) -> ResponseReturnValue:
    """Renew again: undo a cancellation at the period end (auto-renew back on)."""
    _tenant, customer, how = _signed_in_customer(shop_slug)
    found = _subscription_of(customer, subscription_id)
    refused = _needs_code(how, shop_slug)
    if refused is not None:
        return refused
    try:
        cancellation.undo_cancel(found.id, source="customer", actor=_actor(customer))
    except SubscriptionError as error:
        flash(str(error), "error")
    else:
        flash(_("Your subscription renews again."), "info")
    return _home(shop_slug)


# ---------------------------------------------------------------- family sharing


@bp.route("/family/<int:line_id>/members", methods=["POST"])
@limiter.limit(customer_action_rate)
def add_member(shop_slug: str, line_id: int) -> ResponseReturnValue:
    """Share a purchase with a family member by phone (they get an SMS)."""
    _tenant, customer, _how = _signed_in_customer(shop_slug)
    try:
        share = family.add_member(customer, line_id, request.form.get("phone", ""), actor=_actor(customer))
    except LookupError:
        abort(404)
    except family.FamilyRefused as error:
        flash(str(error), "error")
    else:
        flash(_("Shared with %(phone)s: we sent them a text message.", phone=share.member_phone), "info")
    return _home(shop_slug)


@bp.route("/family/members/<int:share_id>/remove", methods=["POST"])
@limiter.limit(customer_action_rate)
def remove_member(shop_slug: str, share_id: int) -> ResponseReturnValue:
    """Stop sharing with a family member, at once."""
    _tenant, customer, _how = _signed_in_customer(shop_slug)
    try:
        share = family.remove_member(customer, share_id, actor=_actor(customer))
    except LookupError:
        abort(404)
    except family.FamilyRefused as error:
        flash(str(error), "error")
    else:
        flash(_("%(phone)s no longer shares this plan.", phone=share.member_phone), "info")
    return _home(shop_slug)
