"""Back-office pages of orders: the orders list, an order, manual entry and CSV upload, customers, top-up
failures and redemptions. Thin: parse, call a service, render."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import or_, select

from catalog.models import Bundle, Plan
from orders import customers as customer_service
from orders import delivery, importing, redemption, refunds, services, topup
from orders.events import OrderError
from orders.forms import (
    CustomerForm,
    FilterForm,
    ManualOrderForm,
    MergeForm,
    ReasonForm,
    RefundForm,
    UploadForm,
)
from orders.fulfilment import fulfil_order
from orders.models import ORDER_STATUSES, Customer, Grant, Order, Redemption
from orders.queries import customer_page_data, order_page_data
from saas import labels, money
from saas.bounds import in_bigint_range
from saas.extensions import db
from saas.ids import new_id
from saas.links import public_url
from saas.uploads import read_capped
from tenants import roles
from tenants.context import current_tenant, requires
from tenants.lookup import find, get_or_404

bp = Blueprint("orders", __name__, url_prefix="/t/<tenant_slug>/orders")
PAGE_SIZE = 50


# ---------------------------------------------------------------- orders


@bp.route("/")
@login_required
@requires(roles.ORDERS_VIEW)
def orders() -> ResponseReturnValue:
    form = FilterForm(request.args)
    shown = [s for s in ORDER_STATUSES if s != "fulfilling"]
    form.status.choices = [("", _("any status")), *labels.choices("order_status", shown)]
    statement = select(Order, Customer).outerjoin(
        Customer, (Customer.tenant_id == Order.tenant_id) & (Customer.id == Order.customer_id)
    )
    if form.status.data:
        statement = statement.where(Order.status == form.status.data)
    if form.channel.data:
        statement = statement.where(Order.channel == form.channel.data.strip())
    query = (form.q.data or "").strip()
    if query:
        like = f"%{query.lower()}%"
        conditions: list[Any] = [
            Order.external_id.like(f"%{query}%"),
            Customer.email.like(like),
            Customer.phone.like(like),
            Customer.name.like(f"%{query}%"),
        ]
        if query.isdigit() and in_bigint_range(int(query)):  # a 28-digit WeChat Pay id is no order id
            conditions.append(Order.id == int(query))
        statement = statement.where(or_(*conditions))
    page = max(1, request.args.get("page", 1, type=int) or 1)
    rows = db.session.execute(
        statement.order_by(Order.created_at.desc(), Order.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
    ).all()
    return render_template(
        "orders/list.html", rows=rows[:PAGE_SIZE], form=form, page=page, has_next=len(rows) > PAGE_SIZE
    )


def _plan_choices() -> list[tuple[int, str]]:
    rows = db.session.execute(
        select(Plan, Bundle)
        .join(Bundle, (Bundle.tenant_id == Plan.tenant_id) & (Bundle.id == Plan.bundle_id))
        .where(Bundle.status != "archived")
        .order_by(Bundle.name, Plan.position, Plan.id)
    ).all()
    return [
        (plan.id, f"{bundle.name} · {plan.name} ({money.format_money(plan.price, plan.currency)})")
        for plan, bundle in rows
    ]


def _plan_currency(plan_id: int | str | None) -> str:
    """Return the currency a plan's price is in (the tenant's when the plan is unknown)."""
    text = str(plan_id or "")
    plan = find(Plan, int(text)) if text.isdigit() else None
    return plan.currency if plan is not None else current_tenant().currency


@bp.route("/new", methods=["GET", "POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def new_order() -> ResponseReturnValue:
    form = ManualOrderForm()
    form.plan_id.choices = _plan_choices()
    if form.validate_on_submit():
        try:
            outcome = services.create_order(
                services.OrderRequest(
                    channel=(form.channel.data or "manual").strip(),
                    external_id=(form.external_id.data or "").strip() or f"M{new_id()}",
                    source="manual",
                    customer=services.CustomerInfo(
                        form.customer_email.data, form.customer_phone.data, form.customer_name.data or ""
                    ),
                    lines=[
                        services.LineRequest(
                            int(form.plan_id.data),
                            int(form.quantity.data or 1),
                            money.parse_optional(form.unit_price.data, _plan_currency(form.plan_id.data)),
                        )
                    ],
                    note=form.note.data or "",
                    paid=bool(form.paid.data),
                    payment_reference=form.payment_reference.data or None,
                    client_ip=form.client_ip.data or None,
                    device_id=form.device_id.data or None,
                )
            )
        except (OrderError, ValueError) as error:
            flash(str(error), "error")
        else:
            if not outcome.created:
                flash(_("That order exists already; here it is."), "info")
            return redirect(url_for("orders.order", order_id=outcome.order.id))
    return render_template("orders/new.html", form=form)


@bp.route("/upload", methods=["GET", "POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def upload_orders() -> ResponseReturnValue:
    form = UploadForm()
    result = None
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash(_("Choose a CSV file."), "error")
        else:
            try:
                result = importing.import_orders_csv(
                    read_capped(upload.stream, "order_csv"), paid=bool(form.paid.data)
                )
            except OrderError as error:
                flash(str(error), "error")
    return render_template("orders/upload.html", form=form, result=result, columns=importing.COLUMNS)


@bp.route("/<int:order_id>")
@login_required
@requires(roles.ORDERS_VIEW)
def order(order_id: int) -> ResponseReturnValue:
    data = order_page_data(get_or_404(Order, order_id))
    return render_template("orders/order.html", **data, reason_form=ReasonForm(), refund_form=RefundForm())


@bp.route("/<int:order_id>/pay", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def pay(order_id: int) -> ResponseReturnValue:
    get_or_404(Order, order_id)
    form = ReasonForm()
    try:
        result = services.mark_paid(order_id, reason=form.reason.data or _("marked paid in the back office"))
    except OrderError as error:
        flash(str(error), "error")
    else:
        flash(_("Payment recorded.") if result.acted else _("The order was paid already."), "info")
    return redirect(url_for("orders.order", order_id=order_id))


@bp.route("/<int:order_id>/fulfil", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def fulfil(order_id: int) -> ResponseReturnValue:
    get_or_404(Order, order_id)

    result = fulfil_order(order_id, reason=_("fulfilled from the back office"))
    flash(_("Fulfilled.") if result.acted else _("Nothing to fulfil."), "info")
    return redirect(url_for("orders.order", order_id=order_id))


@bp.route("/<int:order_id>/cancel", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def cancel(order_id: int) -> ResponseReturnValue:
    get_or_404(Order, order_id)
    form = ReasonForm()
    try:
        services.cancel_order(order_id, reason=form.reason.data or "")
    except OrderError as error:
        flash(str(error), "error")
    else:
        flash(_("Order cancelled."), "info")
    return redirect(url_for("orders.order", order_id=order_id))


@bp.route("/<int:order_id>/resend", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def resend(order_id: int) -> ResponseReturnValue:
    order = get_or_404(Order, order_id)
    form = ReasonForm()
    try:
        sent = delivery.resend_delivery(order, reason=form.reason.data or "")
    except OrderError as error:
        flash(str(error), "error")
    else:
        flash(_("Delivery sent again to %(email)s.", email=sent.recipient), "info")
    return redirect(url_for("orders.order", order_id=order_id))


@bp.route("/<int:order_id>/refund", methods=["POST"])
@login_required
@requires(roles.ORDERS_REFUND)
def refund(order_id: int) -> ResponseReturnValue:
    order = get_or_404(Order, order_id)
    form = RefundForm()
    if not form.validate():
        flash(_("Say why the money is refunded."), "error")
        return redirect(url_for("orders.order", order_id=order_id))
    try:
        row = refunds.refund(
            refunds.RefundRequest(
                order_id=order_id,
                reason=form.reason.data or "",
                amount=money.parse_optional(form.amount.data, order.currency),
                line_id=form.line_id.data,
                grant_ids=[form.grant_id.data] if form.grant_id.data else [],
            )
        )
    except (OrderError, ValueError) as error:
        flash(str(error), "error")
    else:
        flash(_("Refunded %(amount)s.", amount=money.format_money(row.amount, row.currency)), "info")
    return redirect(url_for("orders.order", order_id=order_id))


@bp.route("/grants/<int:grant_id>/redeem", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def redeem_grant(grant_id: int) -> ResponseReturnValue:
    grant = get_or_404(Grant, grant_id)
    outcome = redemption.redeem_grant(grant.id, source="back_office", reference=_("marked used by support"))
    flash(_("Redemption: %(outcome)s", outcome=outcome.outcome), "info" if outcome.accepted else "error")
    return redirect(url_for("orders.order", order_id=grant.order_id))


@bp.route("/grants/<int:grant_id>/retry-topup", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def retry_topup(grant_id: int) -> ResponseReturnValue:
    grant = get_or_404(Grant, grant_id)
    try:
        topup.retry_topup(grant)
    except OrderError as error:
        flash(str(error), "error")
    else:
        flash(_("Top-up queued again."), "info")
    return redirect(request.form.get("next") or url_for("orders.topup_failures"))


@bp.route("/topups")
@login_required
@requires(roles.ORDERS_VIEW)
def topup_failures() -> ResponseReturnValue:
    return render_template(
        "orders/topups.html", grants=topup.topups_needing_attention(), refund_form=RefundForm()
    )


# ---------------------------------------------------------------- redemptions


@bp.route("/redemptions")
@login_required
@requires(roles.ORDERS_VIEW)
def redemptions() -> ResponseReturnValue:
    only = request.args.get("outcome", "")
    statement = select(Redemption).order_by(Redemption.at.desc(), Redemption.id.desc()).limit(200)
    if only == "rejected":
        statement = statement.where(Redemption.outcome.not_in(("redeemed", "already_redeemed")))
    elif only == "flagged":
        statement = statement.where(Redemption.flagged.is_(True))
    return render_template(
        "orders/redemptions.html", rows=list(db.session.scalars(statement)), form=UploadForm(), only=only
    )


@bp.route("/redemptions/report", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def redemption_report() -> ResponseReturnValue:
    form = UploadForm()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose the supplier's CSV of used codes."), "error")
        return redirect(url_for("orders.redemptions"))
    try:
        result = redemption.import_redemption_report(
            read_capped(upload.stream, "redemption_report"), supplier=form.supplier.data or ""
        )
    except OrderError as error:
        flash(str(error), "error")
    else:
        summary = ", ".join(f"{name}: {count}" for name, count in sorted(result.counts.items()))
        flash(_("%(n)s codes read. %(summary)s", n=result.rows, summary=summary), "info")
    return redirect(url_for("orders.redemptions"))


# ---------------------------------------------------------------- customers


@bp.route("/customers")
@login_required
@requires(roles.ORDERS_VIEW)
def customers() -> ResponseReturnValue:
    query = request.args.get("q", "")
    return render_template(
        "orders/customers.html",
        customers=customer_service.search_customers(query),
        q=query,
        portal_url=public_url("portal.page", shop_slug=current_tenant().slug),
    )


@bp.route("/customers/<int:customer_id>")
@login_required
@requires(roles.ORDERS_VIEW)
def customer(customer_id: int) -> ResponseReturnValue:
    record = get_or_404(Customer, customer_id)
    return render_template(
        "orders/customer.html",
        **customer_page_data(record),
        form=CustomerForm(obj=record),
        merge_form=MergeForm(),
    )


@bp.route("/customers/<int:customer_id>/edit", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def edit_customer(customer_id: int) -> ResponseReturnValue:
    record = get_or_404(Customer, customer_id)
    form = CustomerForm()
    if form.validate():
        try:
            customer_service.update_customer(
                record,
                name=form.name.data or "",
                email=form.email.data,
                phone=form.phone.data,
                notes=form.notes.data or "",
            )
        except OrderError as error:
            db.session.rollback()
            flash(str(error), "error")
        else:
            flash(_("Customer saved."), "info")
    else:
        flash(_("Check the fields."), "error")
    return redirect(url_for("orders.customer", customer_id=customer_id))


@bp.route("/customers/<int:customer_id>/merge", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def merge_customer(customer_id: int) -> ResponseReturnValue:
    keep = get_or_404(Customer, customer_id)
    form = MergeForm()
    other_id = (form.other_id.data or "").strip()
    other = find(Customer, int(other_id)) if other_id.isdigit() else None
    if other is None:
        flash(_("No customer with that id."), "error")
        return redirect(url_for("orders.customer", customer_id=customer_id))
    try:
        customer_service.merge_customers(keep, other, form.reason.data or "")
    except OrderError as error:
        flash(str(error), "error")
    else:
        flash(_("Customers merged."), "info")
    return redirect(url_for("orders.customer", customer_id=customer_id))


__all__ = ["bp"]
