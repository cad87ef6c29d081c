"""REST resources of subscriptions under /api/v1: list, get, cancel (now or at the period end), undo,
and record a renewal payment. Amounts are integers in minor units with an ISO currency; ids are strings."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pydantic import BaseModel, Field

from orders.subscriptions import cancellation, reminders, services
from orders.subscriptions.models import (
    Subscription,
    SubscriptionCancellation,
    SubscriptionPeriod,
    SubscriptionReminder,
    SubscriptionRenewal,
)
from orders.subscriptions.services import AlreadyRenewed, SubscriptionError
from saas.errors import ApiError
from saas.timeutil import utcnow
from tenants import roles
from tenants.api import QueryParam, RequestModel, api_blueprint, api_endpoint, paginate
from tenants.lookup import api_get_or_404

bp = api_blueprint("subscriptions_api")
NO_SUBSCRIPTION = _l("No such subscription.")
TAG = "subscriptions"
ReasonCode = Literal["no_longer_needed", "too_expensive", "unsatisfied", "other"]


# ---------------------------------------------------------------- schemas


class SubscriptionOut(BaseModel):
    """A subscription; `current_period_*` is the latest paid period."""

    id: str
    customer_id: str | None
    order_id: str
    plan_id: str
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


class PeriodOut(BaseModel):
    number: int
    kind: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    amount: int
    currency: str
    order_id: str | None
    ended_early_at: dt.datetime | None


class RenewalOut(BaseModel):
    """A renewal payment; `days_from_due` is negative when paid before the period end."""

    id: str
    subscription_id: str
    period_number: int
    channel: str
    plan_id: str
    amount: int
    currency: str
    paid_at: dt.datetime
    due_at: dt.datetime
    days_from_due: int
    timing: str
    reactivated: bool
    period_start: dt.datetime
    period_end: dt.datetime
    order_id: str | None
    created: bool = False


class ReminderOut(BaseModel):
    period_number: int
    offset_days: int
    due_at: dt.datetime
    status: str
    note: str
    created_at: dt.datetime


class CancellationOut(BaseModel):
    """A cancellation receipt."""

    id: str
    subscription_id: str
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
    refund_order_id: str | None
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


def _sid(value: int | None) -> str | None:
    return None if value is None else str(value)


def subscription_out(found: Subscription) -> SubscriptionOut:
    """Render a subscription."""
    return SubscriptionOut(
        id=str(found.id),
        customer_id=_sid(found.customer_id),
        order_id=str(found.order_id),
        plan_id=str(found.plan_id),
        plan_name=found.plan_name,
        bundle_name=found.bundle_name,
        period_unit=found.period_unit,
        period_days=found.period_days,
        channel=found.channel,
        external_id=found.external_id,
        status=found.status,
        auto_renew=found.auto_renew,
        set_to_cancel=found.set_to_cancel,
        price=found.price,
        currency=found.currency,
        time_zone=found.time_zone,
        current_period_number=found.current_period_number,
        current_period_start=found.current_period_start,
        current_period_end=found.current_period_end,
        started_at=found.started_at,
        ended_at=found.ended_at,
    )


def _period_out(period: SubscriptionPeriod) -> PeriodOut:
    return PeriodOut(
        number=period.number,
        kind=period.kind,
        starts_at=period.starts_at,
        ends_at=period.ends_at,
        amount=period.amount,
        currency=period.currency,
        order_id=_sid(period.order_id),
        ended_early_at=period.ended_early_at,
    )


def renewal_out(renewal: SubscriptionRenewal, created: bool = False) -> RenewalOut:
    """Render a renewal."""
    return RenewalOut(
        id=str(renewal.id),
        subscription_id=str(renewal.subscription_id),
        period_number=renewal.period_number,
        channel=renewal.channel,
        plan_id=str(renewal.plan_id),
        amount=renewal.amount,
        currency=renewal.currency,
        paid_at=renewal.paid_at,
        due_at=renewal.due_at,
        days_from_due=renewal.days_from_due,
        timing=renewal.timing,
        reactivated=renewal.reactivated,
        period_start=renewal.period_start,
        period_end=renewal.period_end,
        order_id=_sid(renewal.order_id),
        created=created,
    )


def _reminder_out(reminder: SubscriptionReminder) -> ReminderOut:
    return ReminderOut(
        period_number=reminder.period_number,
        offset_days=reminder.offset_days,
        due_at=reminder.due_at,
        status=reminder.status,
        note=reminder.note,
        created_at=reminder.created_at,
    )


def cancellation_out(row: SubscriptionCancellation) -> CancellationOut:
    """Render a cancellation receipt."""
    return CancellationOut(
        id=str(row.id),
        subscription_id=str(row.subscription_id),
        ticket_number=row.ticket_number,
        kind=row.kind,
        source=row.source,
        reason_code=row.reason_code,
        reason_text=row.reason_text,
        requested_at=row.requested_at,
        effective_at=row.effective_at,
        refund_policy=row.refund_policy,
        refundable_amount=row.refundable_amount,
        currency=row.currency,
        refund_status=row.refund_status,
        refund_order_id=_sid(row.refund_order_id),
        undone_at=row.undone_at,
    )


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
    return [subscription_out(row) for row in rows], cursor


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
        **subscription_out(found).model_dump(),
        periods=[_period_out(p) for p in services.periods_of(found.id)],
        renewals=[renewal_out(r) for r in services.renewals_of(found.id)],
        reminders=[_reminder_out(r) for r in reminders.reminders_of(found.id)],
        cancellations=[cancellation_out(c) for c in cancellation.cancellations_of(found.id)],
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
    return cancellation_out(row)


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
    return cancellation_out(row)


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
    return renewal_out(outcome.renewal, outcome.created)
