"""REST resources of subscriptions under /api/v1: list, get, cancel (now or at the period end), undo,
and record a renewal payment. Amounts are integers in minor units with an ISO currency; ids are strings."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pydantic import Field

from orders.subscriptions import cancellation, reminders, services
from orders.subscriptions.models import (
    Subscription,
)
from orders.subscriptions.services import AlreadyRenewed, SubscriptionError
from saas.errors import ApiError
from saas.timeutil import utcnow
from tenants import roles
from tenants.api import Id, QueryParam, RequestModel, ResponseModel, api_blueprint, api_endpoint, paginate
from tenants.lookup import api_get_or_404

bp = api_blueprint("subscriptions_api")
NO_SUBSCRIPTION = _l("No such subscription.")
TAG = "subscriptions"
ReasonCode = Literal["no_longer_needed", "too_expensive", "unsatisfied", "other"]


# ---------------------------------------------------------------- schemas


class SubscriptionOut(ResponseModel):
    """A subscription; `current_period_*` is the latest paid period."""

    id: Id
    customer_id: Id | None
    order_id: Id
    plan_id: Id
    plan_name: str
    bundle_name: str
    period_unit: str
    period_days: int | None
    channel: str
    external_id: str | None
    status: str
    auto_renew: bool
    set_to_cancel: bool
    price: int
    currency: str
    time_zone: str
    current_period_number: int
    current_period_start: dt.datetime
    current_period_end: dt.datetime
    started_at: dt.datetime
    ended_at: dt.datetime | None


class PeriodOut(ResponseModel):
    number: int
    kind: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    amount: int
    currency: str
    order_id: Id | None
    ended_early_at: dt.datetime | None


class RenewalOut(ResponseModel):
    """A renewal payment; `days_from_due` is negative when paid before the period end."""

    id: Id
    subscription_id: Id
    period_number: int
    channel: str
    plan_id: Id
    amount: int
    currency: str
    paid_at: dt.datetime
    due_at: dt.datetime
    days_from_due: int
    timing: str
    reactivated: bool
    period_start: dt.datetime
    period_end: dt.datetime
    order_id: Id | None
    created: bool = False


class ReminderOut(ResponseModel):
    period_number: int
    offset_days: int
    due_at: dt.datetime
    status: str
    note: str
    created_at: dt.datetime


class CancellationOut(ResponseModel):
    """A cancellation receipt."""

    id: Id
    subscription_id: Id
    ticket_number: str
    kind: str
    source: str
    reason_code: str | None
    reason_text: str
    requested_at: dt.datetime
    effective_at: dt.datetime
    refund_policy: str
    refundable_amount: int
    currency: str
    refund_status: str
    refund_order_id: Id | None
    undone_at: dt.datetime | None


class SubscriptionDetailOut(SubscriptionOut):
    periods: list[PeriodOut]
    renewals: list[RenewalOut]
    reminders: list[ReminderOut]
    cancellations: list[CancellationOut]


class CancelIn(RequestModel):
    """Cancel at the period end (default; undoable until then) or now."""

    when: Literal["period_end", "now"] = "period_end"
    reason_code: ReasonCode | None = None
    reason_text: str = Field("", max_length=2000)
    source: Literal["api", "channel", "support"] = "api"


class UndoIn(RequestModel):
    source: Literal["api", "channel", "support"] = "api"


class RenewalIn(RequestModel):
    """A renewal payment: repeating `idempotency_key` changes nothing; amount defaults to the price."""

    idempotency_key: str = Field("", description="your payment id; required")
    amount: int | None = Field(None, description="minor units")
    currency: str | None = None
    paid_at: dt.datetime | None = Field(None, description="default: now")
    channel: str = "api"
    order_external_id: str | None = Field(None, description="the renewal order's id on the channel")


# ---------------------------------------------------------------- rendering


def _refused(error: SubscriptionError) -> ApiError:
    code = "already_renewed" if isinstance(error, AlreadyRenewed) else "refused"
    return ApiError(409, code, str(error))


def _int_query(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ApiError(400, "invalid_query", _("%(name)s must be a whole number.", name=name))
    return int(raw)


# ---------------------------------------------------------------- endpoints


@api_endpoint(
    bp,
    "/subscriptions",
    "GET",
    summary="List subscriptions",
    scope=roles.ORDERS_VIEW,
    tag=TAG,
    response_model=SubscriptionOut,
    paginated=True,
    query=[
        QueryParam("status", "active, past_due, canceled or expired"),
        QueryParam("plan_id", "a plan id"),
        QueryParam("channel", "the channel it came from"),
        QueryParam("customer_id", "a customer id"),
        QueryParam("renewing_within_days", "active, auto-renewing, period ending within N days", "integer"),
    ],
)
def list_subscriptions() -> tuple[list[SubscriptionOut], str | None]:
    statement = services.subscriptions_query(
        status=request.args.get("status", ""),
        plan_id=_int_query("plan_id"),
        channel=request.args.get("channel", ""),
        customer_id=_int_query("customer_id"),
        renewing_within_days=_int_query("renewing_within_days"),
    )
    rows, cursor = paginate(statement, Subscription.id)
    return [SubscriptionOut.model_validate(row) for row in rows], cursor


@api_endpoint(
    bp,
    "/subscriptions/<int:subscription_id>",
    "GET",
    summary="Get a subscription with its history",
    scope=roles.ORDERS_VIEW,
    tag=TAG,
    response_model=SubscriptionDetailOut,
    errors=(404,),
)
def get_subscription(subscription_id: int) -> SubscriptionDetailOut:
    found = api_get_or_404(Subscription, subscription_id, NO_SUBSCRIPTION)
    return SubscriptionDetailOut(
        **SubscriptionOut.model_validate(found).model_dump(),
        periods=[PeriodOut.model_validate(p) for p in services.periods_of(found.id)],
        renewals=[RenewalOut.model_validate(r) for r in services.renewals_of(found.id)],
        reminders=[ReminderOut.model_validate(r) for r in reminders.reminders_of(found.id)],
        cancellations=[CancellationOut.model_validate(c) for c in cancellation.cancellations_of(found.id)],
    )


@api_endpoint(
    bp,
    "/subscriptions/<int:subscription_id>/cancel",
    "POST",
    summary="Cancel a subscription now or at the period end",
    scope=roles.SUBSCRIPTIONS_CANCEL,
    tag=TAG,
    request_model=CancelIn,
    response_model=CancellationOut,
    status=201,
    errors=(404, 409),
)
def cancel_subscription(subscription_id: int, body: CancelIn) -> CancellationOut:
    found = api_get_or_404(Subscription, subscription_id, NO_SUBSCRIPTION)
    act = cancellation.cancel_now if body.when == "now" else cancellation.cancel_at_period_end
    try:
        row = act(found.id, source=body.source, reason_code=body.reason_code, reason_text=body.reason_text)
    except SubscriptionError as error:
        raise _refused(error) from error
    return CancellationOut.model_validate(row)


@api_endpoint(
    bp,
    "/subscriptions/<int:subscription_id>/undo-cancel",
    "POST",
    summary="Undo a cancel-at-period-end before the period ends",
    scope=roles.SUBSCRIPTIONS_CANCEL,
    tag=TAG,
    request_model=UndoIn,
    response_model=CancellationOut,
    errors=(404, 409),
)
def undo_cancellation(subscription_id: int, body: UndoIn) -> CancellationOut:
    found = api_get_or_404(Subscription, subscription_id, NO_SUBSCRIPTION)
    try:
        row = cancellation.undo_cancel(found.id, source=body.source)
    except SubscriptionError as error:
        raise _refused(error) from error
    return CancellationOut.model_validate(row)


@api_endpoint(
    bp,
    "/subscriptions/<int:subscription_id>/renewals",
    "POST",
    summary="Record a renewal payment (idempotent per idempotency_key)",
    scope=roles.ORDERS_MANAGE,
    tag=TAG,
    request_model=RenewalIn,
    response_model=RenewalOut,
    status=201,
    errors=(404, 409),
)
def renew_subscription(subscription_id: int, body: RenewalIn) -> RenewalOut:
    found = api_get_or_404(Subscription, subscription_id, NO_SUBSCRIPTION)
    key = body.idempotency_key.strip() or request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise ApiError(422, "invalid", _("idempotency_key (or the Idempotency-Key header) is required."))
    try:
        outcome = services.renew(
            found.id,
            paid_at=body.paid_at or utcnow(),
            amount=found.renewal_amount if body.amount is None else body.amount,
            currency=body.currency or found.currency,
            channel=body.channel,
            idempotency_key=f"api:{key}",
            order_external_id=body.order_external_id,
        )
    except SubscriptionError as error:
        raise _refused(error) from error
    renewal = RenewalOut.model_validate(outcome.renewal)
    renewal.created = outcome.created
    return renewal
