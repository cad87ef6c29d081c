"""The signed "my rights" (我的权益) link of every message: `/my/<token>` signs the customer in to the portal.

The token names the tenant and the customer; the tenant is bound for the request from it. Opening it signs
the customer in to their shop's portal (`orders.portal`, how = "link") and redirects there. The token's own
reveal and redeem actions stay for links already sent and for scripts.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from orders import delivery, redemption
from orders.events import OrderError
from orders.models import Customer, Grant
from orders.portal import signin
from saas.extensions import db
from saas.security import customer_action_rate, customer_page_rate, limiter
from tenants.context import bind_request_tenant
from tenants.models import Tenant

bp = Blueprint("my_rights", __name__, url_prefix="/my")


def _customer_from_token(token: str) -> Customer:
    """Resolve the link: bind its tenant and return its customer; 404 when invalid or expired."""
    try:
        tenant_id, customer_id = delivery.read_token(token)
    except delivery.LinkInvalid:
        abort(404)
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        abort(404)
    bind_request_tenant(tenant)
    customer = delivery.resolve_customer(tenant_id, customer_id)
    if customer is None:
        abort(404)
    return customer


def _grant_or_404(customer: Customer, grant_id: int) -> Grant:
    grant = delivery.customer_grant(customer, grant_id)
    if grant is None:
        abort(404)
    return grant


def _by_customer(customer: Customer) -> str:
    return f"customer {customer.email or customer.phone or customer.id} (my rights link)"


@bp.route("/<token>")
@limiter.limit(customer_page_rate, methods=["GET"])
def page(token: str) -> ResponseReturnValue:
    """Sign the customer the link names in to their shop's portal (我的权益) and open it."""
    customer = _customer_from_token(token)
    signin.sign_in(session, customer, how="link")
    return redirect(url_for("portal.page", shop_slug=g.tenant.slug))


@bp.route("/<token>/grants/<int:grant_id>/reveal", methods=["POST"])
@limiter.limit(customer_action_rate)
def reveal(token: str, grant_id: int) -> ResponseReturnValue:
    """Return one right's code in full (JSON for the reveal button); audited."""
    customer = _customer_from_token(token)
    grant = _grant_or_404(customer, grant_id)
    try:
        value = delivery.reveal(grant, by=_by_customer(customer), ip=request.remote_addr)
    except OrderError as error:
        return jsonify({"code": "not_revealable", "message": str(error)}), 409
    return jsonify({"value": value})


@bp.route("/<token>/grants/<int:grant_id>/redeem", methods=["POST"])
@limiter.limit(customer_action_rate)
def redeem(token: str, grant_id: int) -> ResponseReturnValue:
    """Mark one right as used."""
    customer = _customer_from_token(token)
    grant = _grant_or_404(customer, grant_id)
    outcome = redemption.redeem_grant(
        grant.id, source="customer", actor=_by_customer(customer), ip=request.remote_addr
    )
    if outcome.accepted:
        flash(_("Marked as used."), "info")
    else:
        flash(_("This right cannot be marked as used."), "error")
    return redirect(url_for("portal.page", shop_slug=g.tenant.slug))
