"""REST API of orders: create (idempotent), read, list, pay, refund; grants; redemptions (核销)."""

from __future__ import annotations

import datetime as dt

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pydantic import BaseModel, Field
from sqlalchemy import select

from orders import redemption, refunds, services
from orders.events import OrderError
from orders.fulfilment import order_grants, order_lines
from orders.models import Customer, Grant, Order
from saas.errors import ApiError
from saas.extensions import db
from tenants import roles
from tenants.api import Id, QueryParam, RequestModel, ResponseModel, api_blueprint, api_endpoint, paginate
from tenants.lookup import api_get_or_404

bp = api_blueprint("orders_api")
NO_ORDER = _l("No such order.")


class CustomerIn(RequestModel):
    email: str | None = None
    phone: str | None = None
    name: str = ""
    external_id: str | None = Field(None, description="the customer's id on the channel")


class LineIn(RequestModel):
    plan_id: str
    quantity: int = 1
    unit_price: int | None = Field(None, description="minor units; default: the plan's price")
    sku: str = ""


class OrderIn(RequestModel):
    """A new order. Without external_id, the Idempotency-Key header is used as the order's external id."""

    external_id: str | None = None
    channel: str = "api"
    customer: CustomerIn
    lines: list[LineIn]
    paid: bool = False
    payment_reference: str | None = None
    note: str = ""
    reserve_minutes: int | None = Field(None, description="hold card keys this long while unpaid")
    client_ip: str | None = Field(None, max_length=45, description="the buyer's IP address (risk control)")
    device_id: str | None = Field(None, max_length=128, description="the buyer's device id (risk control)")


class PayIn(RequestModel):
    reference: str | None = None
    reason: str = ""


class RefundIn(RequestModel):
    """A refund: the whole order by default, or one line, or some grants; amount in minor units."""

    reason: str | None = None
    amount: int | None = None
    line_id: str | None = None
    grant_ids: list[str] = []
    external_id: str | None = Field(None, description="your refund id: repeating it changes nothing")


class RedemptionIn(RequestModel):
    """Report that a right was used: by its code or by grant id."""

    code: str | None = None
    grant_id: str | None = None
    reference: str = ""


class GrantOut(ResponseModel):
    id: Id
    order_id: Id
    order_line_id: Id
    customer_id: Id | None
    right_id: Id
    right_name: str
    kind: str
    status: str
    mask: str
    delivered_at: dt.datetime | None
    valid_until: dt.datetime | None
    redeemed_at: dt.datetime | None
    redemption_source: str | None
    topup_state: str | None
    flag: str | None


class LineOut(ResponseModel):
    id: Id
    plan_id: Id | None
    title: str
    quantity: int
    unit_price: int
    currency: str
    total: int
    refunded_amount: int


class OrderOut(BaseModel):
    id: str
    channel: str
    external_id: str
    source: str
    status: str
    currency: str
    total: int
    refunded_amount: int
    customer_id: str | None
    customer_email: str | None
    created_at: dt.datetime
    paid_at: dt.datetime | None
    fulfilled_at: dt.datetime | None
    hold_reason: str | None = Field(None, description="why risk control holds the order (status held)")
    created: bool = Field(False, description="true when this call created the order")
    lines: list[LineOut] = []
    grants: list[GrantOut] = []


class RefundOut(BaseModel):
    id: str
    order_id: str
    amount: int
    currency: str
    reason: str
    scope: str
    source: str
    created_at: dt.datetime


class RedemptionOut(BaseModel):
    outcome: str
    grant_id: str | None


def _sid(value: int | None) -> str | None:
    return None if value is None else str(value)


def order_out(order: Order, *, detail: bool = True, created: bool = False) -> OrderOut:
    customer = db.session.get(Customer, (order.tenant_id, order.customer_id)) if order.customer_id else None
    return OrderOut(
        id=str(order.id),
        channel=order.channel,
        external_id=order.external_id,
        source=order.source,
        status=order.status,
        currency=order.currency,
        total=order.total,
        refunded_amount=order.refunded_amount,
        customer_id=_sid(order.customer_id),
        customer_email=customer.email if customer else None,
        created_at=order.created_at,
        paid_at=order.paid_at,
        fulfilled_at=order.fulfilled_at,
        hold_reason=order.hold_reason if order.status == "held" else None,
        created=created,
        lines=[LineOut.model_validate(line) for line in order_lines(order.id)] if detail else [],
        grants=[GrantOut.model_validate(g) for g in order_grants(order.id)] if detail else [],
    )


def _int_id(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not str(value).isdigit():
        raise ApiError(422, "invalid", _("%(name)s must be a numeric id string.", name=name))
    return int(value)


@api_endpoint(
    bp,
    "/orders",
    "POST",
    summary="Create an order (idempotent per channel and external id)",
    scope=roles.ORDERS_MANAGE,
    tag="orders",
    request_model=OrderIn,
    response_model=OrderOut,
    status=201,
    errors=(422,),
)
def create_order(body: OrderIn) -> OrderOut:
    external_id = body.external_id or request.headers.get("Idempotency-Key", "").strip()
    if not external_id:
        raise ApiError(422, "invalid", _("Send external_id or an Idempotency-Key header."))
    try:
        outcome = services.create_order(
            services.OrderRequest(
                channel=body.channel,
                external_id=external_id,
                source="api",
                customer=services.CustomerInfo(
                    body.customer.email, body.customer.phone, body.customer.name, body.customer.external_id
                ),
                lines=[
                    services.LineRequest(
                        _int_id(line.plan_id, "plan_id") or 0, line.quantity, line.unit_price, line.sku
                    )
                    for line in body.lines
                ],
                paid=body.paid,
                payment_reference=body.payment_reference,
                note=body.note,
                reserve_minutes=body.reserve_minutes,
                client_ip=body.client_ip,
                device_id=body.device_id,
            )
        )
    except OrderError as error:
        raise ApiError(422, "invalid", str(error)) from error
    return order_out(outcome.order, created=outcome.created)


@api_endpoint(
    bp,
    "/orders/<int:order_id>",
    "GET",
    summary="Get an order with its lines and grants",
    scope=roles.ORDERS_VIEW,
    tag="orders",
    response_model=OrderOut,
    errors=(404,),
)
def get_order(order_id: int) -> OrderOut:
    return order_out(api_get_or_404(Order, order_id, NO_ORDER))


@api_endpoint(
    bp,
    "/orders",
    "GET",
    summary="List orders, newest first",
    scope=roles.ORDERS_VIEW,
    tag="orders",
    response_model=OrderOut,
    paginated=True,
    query=[
        QueryParam("status", "only this status"),
        QueryParam("channel", "only this channel"),
        QueryParam("external_id", "only this external order id"),
        QueryParam("customer_id", "only this customer's orders"),
    ],
)
def list_orders() -> tuple[list[OrderOut], str | None]:
    statement = select(Order)
    for name in ("status", "channel", "external_id"):
        value = request.args.get(name)
        if value:
            statement = statement.where(getattr(Order, name) == value)
    customer_id = _int_id(request.args.get("customer_id"), "customer_id")
    if customer_id is not None:
        statement = statement.where(Order.customer_id == customer_id)
    rows, next_cursor = paginate(statement, Order.id)
    return [order_out(order, detail=False) for order in rows], next_cursor


@api_endpoint(
    bp,
    "/orders/<int:order_id>/pay",
    "POST",
    summary="Record an order's payment and fulfil it",
    scope=roles.ORDERS_MANAGE,
    tag="orders",
    request_model=PayIn,
    response_model=OrderOut,
    errors=(404, 422),
)
def pay_order(order_id: int, body: PayIn) -> OrderOut:
    api_get_or_404(Order, order_id, NO_ORDER)
    try:
        services.mark_paid(order_id, reference=body.reference, reason=body.reason)
    except OrderError as error:
        raise ApiError(422, "invalid", str(error)) from error
    return order_out(api_get_or_404(Order, order_id, NO_ORDER))


@api_endpoint(
    bp,
    "/orders/<int:order_id>/refunds",
    "POST",
    summary="Refund an order, a line or grants",
    scope=roles.ORDERS_REFUND,
    tag="orders",
    request_model=RefundIn,
    response_model=RefundOut,
    status=201,
    errors=(404, 422),
)
def refund_order(order_id: int, body: RefundIn) -> RefundOut:
    api_get_or_404(Order, order_id, NO_ORDER)
    try:
        row = refunds.refund(
            refunds.RefundRequest(
                order_id=order_id,
                reason=body.reason or "",
                source="api",
                amount=body.amount,
                line_id=_int_id(body.line_id, "line_id"),
                grant_ids=[_int_id(g, "grant_ids") or 0 for g in body.grant_ids],
                external_id=body.external_id,
            )
        )
    except OrderError as error:
        raise ApiError(422, "invalid", str(error)) from error
    return RefundOut(
        id=str(row.id),
        order_id=str(row.order_id),
        amount=row.amount,
        currency=row.currency,
        reason=row.reason,
        scope=row.scope,
        source=row.source,
        created_at=row.created_at,
    )


@api_endpoint(
    bp,
    "/grants/<int:grant_id>",
    "GET",
    summary="Get a grant (never its secret)",
    scope=roles.ORDERS_VIEW,
    tag="orders",
    response_model=GrantOut,
    errors=(404,),
)
def get_grant(grant_id: int) -> GrantOut:
    return GrantOut.model_validate(api_get_or_404(Grant, grant_id, _("No such grant.")))


@api_endpoint(
    bp,
    "/redemptions",
    "POST",
    summary="Report a redemption (核销) by code or grant id; idempotent",
    scope=roles.ORDERS_MANAGE,
    tag="orders",
    request_model=RedemptionIn,
    response_model=RedemptionOut,
    errors=(409, 422),
)
def create_redemption(body: RedemptionIn) -> RedemptionOut:
    grant_id = _int_id(body.grant_id, "grant_id")
    if grant_id is None and not (body.code or "").strip():
        raise ApiError(422, "invalid", _("Send a code or a grant_id."))
    if grant_id is not None:
        outcome = redemption.redeem_grant(grant_id, source="api", reference=body.reference)
    else:
        outcome = redemption.redeem_code(body.code or "", source="api", reference=body.reference)
    if outcome.outcome == "unknown":
        raise ApiError(422, "unknown_code", _("No delivered right has this code or id."))
    if not outcome.accepted:
        raise ApiError(409, outcome.outcome, _("This right cannot be redeemed (refunded or not delivered)."))
    return RedemptionOut(outcome=outcome.outcome, grant_id=_sid(outcome.grant_id))
