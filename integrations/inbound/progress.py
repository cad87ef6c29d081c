"""How a channel's inbox is coming along: the backlog, the drain rate and the oldest waiting delivery.

Shown live on the channel page during a sale (polled every few seconds), so each figure is one aggregate
over the channel's rows, read in the bound tenant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask_babel import format_timedelta
from sqlalchemy import func, select

from integrations.models import InboxDelivery
from saas.extensions import db
from saas.timeutil import utcnow

# Deliveries not yet at an end: new, being processed, failed and due again, or waiting for an earlier event.
BACKLOG_STATUSES = ("pending", "processing", "failed", "waiting")
RATE_WINDOW = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class InboxProgress:
    """A channel's inbox at one moment."""

    waiting: int  # deliveries in the backlog
    drained_last_minute: int  # deliveries that reached an end in the last minute
    oldest_waiting_at: dt.datetime | None  # when the oldest delivery in the backlog was received
    at: dt.datetime

    @property
    def oldest_age_seconds(self) -> int | None:
        if self.oldest_waiting_at is None:
            return None
        return max(0, int((self.at - self.oldest_waiting_at).total_seconds()))

    def as_json(self) -> dict[str, Any]:
        """Return the figures and how the page shows them (in the reader's language)."""
        age = self.oldest_age_seconds
        return {
            "waiting": self.waiting,
            "drained_last_minute": self.drained_last_minute,
            "oldest_age_seconds": age,
            "oldest_age": "—" if age is None else format_timedelta(dt.timedelta(seconds=age), threshold=1.0),
        }


def inbox_progress(channel_id: int, now: dt.datetime | None = None) -> InboxProgress:
    """Return the channel's backlog, how many deliveries it drained in the last minute, its oldest waiting."""
    now = now or utcnow()
    waiting, oldest = db.session.execute(
        select(func.count(), func.min(InboxDelivery.received_at)).where(
            InboxDelivery.channel_id == channel_id, InboxDelivery.status.in_(BACKLOG_STATUSES)
        )
    ).one()
    drained = db.session.scalar(
        select(func.count()).where(
            InboxDelivery.channel_id == channel_id, InboxDelivery.processed_at >= now - RATE_WINDOW
        )
    )
    if oldest is not None and oldest.tzinfo is None:  # SQLite forgets the zone in an aggregate
        oldest = oldest.replace(tzinfo=dt.UTC)
    return InboxProgress(int(waiting), int(drained or 0), oldest, now)
