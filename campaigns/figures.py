"""Campaign figures: issued, claimed, redeemed (核销) and refused, per campaign, partner and day; statements.

Counts are SQL aggregates (a campaign has at most `MAX_UNITS` codes). Days and periods are the tenant's
own (its time zone), like every report.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import distinct, func, select

from campaigns.models import Campaign, CampaignCode, ClaimAttempt, Partner
from orders.models import Grant
from saas.extensions import db


@dataclass
class Counts:
    """What happened to a campaign's codes."""

    issued: int = 0
    claimed: int = 0
    redeemed: int = 0  # claimed codes whose order has a redeemed right
    void: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # refused claims by outcome

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


def _redeemed_by_campaign(campaign_ids: list[int]) -> dict[int, int]:
    rows = db.session.execute(
        select(CampaignCode.campaign_id, func.count(distinct(CampaignCode.id)))
        .join(Grant, Grant.order_id == CampaignCode.order_id)
        .where(CampaignCode.campaign_id.in_(campaign_ids), Grant.redeemed_at.is_not(None))
        .group_by(CampaignCode.campaign_id)
    )
    return {campaign_id: count for campaign_id, count in rows}


def counts_by_campaign(campaign_ids: list[int]) -> dict[int, Counts]:
    """Counts for each of the given campaigns."""
    result = {campaign_id: Counts() for campaign_id in campaign_ids}
    if not campaign_ids:
        return result
    statuses = db.session.execute(
        select(CampaignCode.campaign_id, CampaignCode.status, func.count())
        .where(CampaignCode.campaign_id.in_(campaign_ids))
        .group_by(CampaignCode.campaign_id, CampaignCode.status)
    )
    for campaign_id, status, count in statuses:
        counts = result[campaign_id]
        counts.issued += count
        if status == "claimed":
            counts.claimed = count
        elif status == "void":
            counts.void = count
    for campaign_id, redeemed in _redeemed_by_campaign(campaign_ids).items():
        result[campaign_id].redeemed = redeemed
    refused = db.session.execute(
        select(ClaimAttempt.campaign_id, ClaimAttempt.outcome, func.count())
        .where(ClaimAttempt.campaign_id.in_(campaign_ids), ClaimAttempt.outcome != "claimed")
        .group_by(ClaimAttempt.campaign_id, ClaimAttempt.outcome)
    )
    for campaign_id, outcome, count in refused:
        result[campaign_id].refused[outcome] = count
    return result


def guesses_total() -> int:
    """Unknown codes tried against the tenant (a guessed code belongs to no campaign)."""
    return db.session.scalar(select(func.count()).where(ClaimAttempt.outcome == "unknown_code")) or 0


@dataclass
class PartnerRow:
    """A partner's campaigns added up."""

    partner: Partner
    campaigns: int
    counts: Counts


def by_partner(campaigns: list[Campaign], counts: dict[int, Counts]) -> list[PartnerRow]:
    """Add the campaigns' counts up per partner."""
    partners = {p.id: p for p in db.session.scalars(select(Partner))}
    rows: dict[int, PartnerRow] = {}
    for campaign in campaigns:
        row = rows.setdefault(campaign.partner_id, PartnerRow(partners[campaign.partner_id], 0, Counts()))
        row.campaigns += 1
        c = counts[campaign.id]
        row.counts.issued += c.issued
        row.counts.claimed += c.claimed
        row.counts.redeemed += c.redeemed
        row.counts.void += c.void
    return sorted(rows.values(), key=lambda r: r.partner.name)


@dataclass
class Day:
    """One of the tenant's days in a campaign's life."""

    day: dt.date
    issued: int = 0
    claimed: int = 0
    redeemed: int = 0


def per_day(campaign_id: int, zone: str) -> list[Day]:
    """Issued, claimed and redeemed codes per day in the tenant's zone, newest first."""
    tz = ZoneInfo(zone)
    days: dict[dt.date, Day] = defaultdict(lambda: Day(dt.date.min))
    codes = db.session.execute(
        select(CampaignCode.issued_at, CampaignCode.claimed_at).where(CampaignCode.campaign_id == campaign_id)
    )
    for issued_at, claimed_at in codes:
        days[issued_at.astimezone(tz).date()].issued += 1
        if claimed_at is not None:
            days[claimed_at.astimezone(tz).date()].claimed += 1
    redeemed = db.session.execute(
        select(func.min(Grant.redeemed_at))
        .join(CampaignCode, CampaignCode.order_id == Grant.order_id)
        .where(CampaignCode.campaign_id == campaign_id, Grant.redeemed_at.is_not(None))
        .group_by(CampaignCode.id)
    )
    for (redeemed_at,) in redeemed:
        days[redeemed_at.astimezone(tz).date()].redeemed += 1
    for day, row in days.items():
        row.day = day
    return sorted(days.values(), key=lambda d: d.day, reverse=True)


# ---------------------------------------------------------------- the partner's statement


@dataclass
class StatementLine:
    """One campaign of a partner in a period: billable codes × partner price."""

    campaign: Campaign
    billable: int

    @property
    def amount(self) -> int:
        return self.billable * self.campaign.partner_price


@dataclass
class Statement:
    """What a partner owes for a period, by each campaign's billing basis, per currency."""

    partner: Partner
    start: dt.date
    end: dt.date  # inclusive
    lines: list[StatementLine]

    def totals(self) -> dict[str, int]:
        sums: dict[str, int] = defaultdict(int)
        for line in self.lines:
            sums[line.campaign.currency] += line.amount
        return dict(sums)


def period_bounds(start: dt.date, end: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants of the tenant's days start..end (inclusive)."""
    tz = ZoneInfo(zone)
    begin = dt.datetime.combine(start, dt.time.min, tzinfo=tz).astimezone(dt.UTC)
    finish = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz).astimezone(dt.UTC)
    return begin, finish


def statement(partner: Partner, start: dt.date, end: dt.date, zone: str) -> Statement:
    """The partner's statement: per campaign, codes issued (basis `issued`, void codes not billed) or
    claimed (basis `claimed`) in the period, times the partner price."""
    begin, finish = period_bounds(start, end, zone)
    campaigns = list(
        db.session.scalars(select(Campaign).where(Campaign.partner_id == partner.id).order_by(Campaign.id))
    )
    lines = []
    for campaign in campaigns:
        if campaign.billing_basis == "issued":
            where = [
                CampaignCode.issued_at >= begin,
                CampaignCode.issued_at < finish,
                CampaignCode.status != "void",
            ]
        else:
            where = [CampaignCode.claimed_at >= begin, CampaignCode.claimed_at < finish]
        billable = (
            db.session.scalar(select(func.count()).where(CampaignCode.campaign_id == campaign.id, *where))
            or 0
        )
        lines.append(StatementLine(campaign, billable))
    return Statement(partner, start, end, lines)
