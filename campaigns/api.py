"""The partner API of campaigns under /api/v1: issue one code (idempotent), claim a code, read a campaign.

A bank's points-exchange flow issues a code when its customer spends points
(`POST /campaigns/<id>/codes` with an `idempotency_key`: the same key gives the same code back), and may
claim it for its customer at once (`POST /campaigns/claims`, the bank having verified the customer).
Both need a key with the `campaigns.partner` scope. Ids are strings; amounts integers in minor units.
"""

from __future__ import annotations

import datetime as dt

from flask_babel import gettext as _
from pydantic import BaseModel, Field

from campaigns import claims, figures, services
from campaigns.models import Campaign
from saas.errors import ApiError
from tenants import roles
from tenants.api import RequestModel, api_blueprint, api_endpoint

bp = api_blueprint("campaigns_api")
TAG = "campaigns"


class IssueCodeIn(RequestModel):
    """Issue one code; repeating the same `idempotency_key` returns the same code, never a second one."""

    idempotency_key: str | None = Field(None, max_length=128)


class IssuedCodeOut(BaseModel):
    """A code issued to the partner, to hand to its customer."""

    id: str
    campaign_id: str
    code: str
    status: str
    claimable_until: dt.datetime
    created: bool


class ClaimIn(RequestModel):
    """Claim a code for a customer the partner has identified: a phone, or an email."""

    code: str = Field("", max_length=64)
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)
    client_ip: str | None = Field(None, max_length=45)


class ClaimOut(BaseModel):
    """A successful claim: the order that delivers the bundle's rights."""

    outcome: str
    order_id: str
    customer_id: str | None


class CampaignOut(BaseModel):
    """A campaign and what happened to its codes."""

    id: str
    name: str
    status: str
    units: int
    issued: int
    claimed: int
    redeemed: int
    refused_claims: int
    partner_price: int
    currency: str
    billing_basis: str
    starts_at: dt.datetime
    ends_at: dt.datetime


def _campaign_or_404(campaign_id: int) -> Campaign:
    found = services.get_campaign(campaign_id)
    if found is None:
        raise ApiError(404, "not_found", _("No such campaign."))
    return found


@api_endpoint(
    bp,
    "/campaigns/<int:campaign_id>",
    "GET",
    summary="Get a campaign and its figures",
    scope=roles.CAMPAIGNS_VIEW,
    tag=TAG,
    response_model=CampaignOut,
    errors=(404,),
)
def get_campaign(campaign_id: int) -> CampaignOut:
    found = _campaign_or_404(campaign_id)
    counts = figures.counts_by_campaign([found.id])[found.id]
    return CampaignOut(
        id=str(found.id),
        name=found.name,
        status=found.status,
        units=found.units,
        issued=counts.issued,
        claimed=counts.claimed,
        redeemed=counts.redeemed,
        refused_claims=counts.refused_total,
        partner_price=found.partner_price,
        currency=found.currency,
        billing_basis=found.billing_basis,
        starts_at=found.starts_at,
        ends_at=found.ends_at,
    )


@api_endpoint(
    bp,
    "/campaigns/<int:campaign_id>/codes",
    "POST",
    summary="Issue one code of a campaign (idempotent by idempotency_key)",
    scope=roles.CAMPAIGNS_PARTNER,
    tag=TAG,
    request_model=IssueCodeIn,
    response_model=IssuedCodeOut,
    status=201,
    errors=(404, 409, 422),
)
def issue_code(campaign_id: int, body: IssueCodeIn) -> IssuedCodeOut:
    found = _campaign_or_404(campaign_id)
    if not body.idempotency_key or not body.idempotency_key.strip():
        raise ApiError(422, "invalid", _("An idempotency key is required (at most 128 characters)."))
    try:
        issued = services.issue_code(found.id, body.idempotency_key)
    except services.CampaignError as error:
        raise ApiError(409, "refused", str(error)) from error
    return IssuedCodeOut(
        id=str(issued.row.id),
        campaign_id=str(found.id),
        code=issued.code,
        status=issued.row.status,
        claimable_until=found.ends_at,
        created=issued.created,
    )


CLAIM_STATUS = {"unknown_code": 404, "rate_limited": 429}


@api_endpoint(
    bp,
    "/campaigns/claims",
    "POST",
    summary="Claim a code for a customer: its rights are delivered once",
    scope=roles.CAMPAIGNS_PARTNER,
    tag=TAG,
    request_model=ClaimIn,
    response_model=ClaimOut,
    status=201,
    errors=(404, 409, 422, 429),
)
def claim_code(body: ClaimIn) -> ClaimOut:
    try:
        claimant = claims.normalise_claimant(body.phone or body.email or "")
    except claims.ClaimantInvalid as error:
        raise ApiError(422, "invalid", str(error)) from error
    if not body.code.strip():
        raise ApiError(422, "invalid", _("The code is required."))
    result = claims.claim(body.code, claimant, ip=body.client_ip, via="api")
    if not result.claimed or result.order is None:
        raise ApiError(CLAIM_STATUS.get(result.outcome, 409), result.outcome, claims.refusal_message(result))
    return ClaimOut(
        outcome=result.outcome,
        order_id=str(result.order.id),
        customer_id=None if result.order.customer_id is None else str(result.order.customer_id),
    )
