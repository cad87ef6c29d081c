"""The public claim page on the tenant's shop (`/claim/<shop>`): code + phone or email + a one-time code.

No account: the claimant proves the phone (SMS) or email (mail) with a six-digit code, valid ten minutes,
then claims; a verified claimant may claim more codes for `VERIFIED_MINUTES` without a new code. A
successful claim opens the claimant's "my rights" page, and the delivery message goes out as for any order.
"""

from __future__ import annotations

import time

from flask import Blueprint, abort, flash, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from campaigns import claims
from campaigns.forms import ClaimForm, ContactForm
from orders.delivery import my_rights_token
from saas.extensions import db
from saas.security import customer_action_rate, customer_page_rate, limiter
from tenants.context import bind_request_tenant, client_ip
from tenants.models import Tenant
from tenants.outbox import SmsCodeLimited

bp = Blueprint("campaign_claim", __name__, url_prefix="/claim/<shop>")
VERIFIED_MINUTES = 30
SESSION_KEY = "campaign_claimant"


def _shop_or_404(shop: str) -> Tenant:
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == shop))
    if tenant is None:
        abort(404)
    bind_request_tenant(tenant)
    return tenant


def _verified_claimant(tenant: Tenant) -> str | None:
    held = session.get(SESSION_KEY)
    if (
        not isinstance(held, dict)
        or held.get("t") != str(tenant.id)
        or float(held.get("until", 0)) < time.time()
    ):
        return None
    return str(held.get("c") or "") or None


def _remember(tenant: Tenant, claimant: str) -> None:
    session[SESSION_KEY] = {"t": str(tenant.id), "c": claimant, "until": time.time() + VERIFIED_MINUTES * 60}


@bp.route("/")
@limiter.limit(customer_page_rate, methods=["GET"])
def page(shop: str) -> ResponseReturnValue:
    """Show the claim form."""
    tenant = _shop_or_404(shop)
    return render_template(
        "campaigns/claim.html",
        shop=tenant,
        contact_form=ContactForm(formdata=None),
        claim_form=ClaimForm(formdata=None, contact=_verified_claimant(tenant) or ""),
        verified=_verified_claimant(tenant),
    )


@bp.route("/code", methods=["POST"])
@limiter.limit(customer_action_rate)
def send_code(shop: str) -> ResponseReturnValue:
    """Send a one-time code to the phone (SMS) or email given."""
    tenant = _shop_or_404(shop)
    form = ContactForm()
    if not form.validate():
        flash(_("Enter a mobile number or an email address."), "error")
        return redirect(url_for("campaign_claim.page", shop=shop))
    try:
        claimant = claims.normalise_claimant(form.contact.data or "")
        claims.send_verification(claimant, tenant.name)
    except (claims.ClaimantInvalid, claims.VerificationRefused) as error:
        flash(str(error), "error")
    except SmsCodeLimited:
        db.session.rollback()
        flash(_("Too many codes were sent to this number: try again later."), "error")
    else:
        flash(_("We sent a six-digit code. It is valid for 10 minutes."), "info")
    return redirect(url_for("campaign_claim.page", shop=shop))


@bp.route("/", methods=["POST"])
@limiter.limit(customer_action_rate)
def claim(shop: str) -> ResponseReturnValue:
    """Claim a code for the verified phone or email; open "my rights" when it is delivered."""
    tenant = _shop_or_404(shop)
    form = ClaimForm()
    verified = _verified_claimant(tenant)
    try:
        claimant = claims.normalise_claimant(form.contact.data or "")
    except claims.ClaimantInvalid as error:
        flash(str(error), "error")
        return redirect(url_for("campaign_claim.page", shop=shop))
    if claimant != verified:
        try:
            claims.check_verification(claimant, form.verification.data or "")
        except claims.VerificationRefused as error:
            flash(str(error), "error")
            return redirect(url_for("campaign_claim.page", shop=shop))
        _remember(tenant, claimant)
    result = claims.claim(form.code.data or "", claimant, ip=client_ip(), via="page")
    if not result.claimed or result.order is None or result.order.customer_id is None:
        flash(claims.refusal_message(result), "error")
        return redirect(url_for("campaign_claim.page", shop=shop))
    flash(_("Claimed: your rights are below, and on their way to you."), "info")
    return redirect(url_for("my_rights.page", token=my_rights_token(tenant.id, result.order.customer_id)))
