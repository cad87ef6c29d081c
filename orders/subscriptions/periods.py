"""Period arithmetic in the tenant's time zone: months clamp to the month's end, counted from the anchor.

A subscription's periods are computed from its anchor (the local moment its first period, or its latest
reactivation, started), never from the previous period's end: 31 Jan + 1 month is 28 Feb (29 in a leap
year), + 2 months is 31 Mar again. A quarter is 3 months, a year 12; an "N days" plan adds N calendar days
in the tenant's zone, keeping the local time of day (so a DST change never moves the hour a period ends).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

MONTHS_PER_UNIT = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True)
class Cadence:
    """How long one period is: a number of months, or a number of days."""

    months: int = 0
    days: int = 0

    @classmethod
    def of(cls, period_unit: str, period_days: int | None = None) -> Cadence:
        """Return the cadence of a plan's period unit (`month`, `quarter`, `year` or `days` with N)."""
        if period_unit in MONTHS_PER_UNIT:
            return cls(months=MONTHS_PER_UNIT[period_unit])
        if period_unit == "days" and period_days and period_days > 0:
            return cls(days=int(period_days))
        raise ValueError(f"unknown period: {period_unit!r} ({period_days!r} days)")


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Add calendar months to a local datetime, clamping the day to the last day of the target month."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def local_anchor(anchor_utc: dt.datetime, zone: str) -> dt.datetime:
    """Return the anchor as a naive wall-clock time in `zone` (the arithmetic works on wall time)."""
    return anchor_utc.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def wall_to_utc(wall: dt.datetime, zone: str) -> dt.datetime:
    """Turn a naive wall-clock time in `zone` into an aware UTC moment."""
    return wall.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def boundary(anchor_utc: dt.datetime, zone: str, cadence: Cadence, steps: int) -> dt.datetime:
    """Return the moment `steps` periods after the anchor, computed from the anchor itself."""
    wall = local_anchor(anchor_utc, zone)
    if cadence.months:
        shifted = add_months(wall, cadence.months * steps)
    else:
        shifted = wall + dt.timedelta(days=cadence.days * steps)
    return wall_to_utc(shifted, zone)


def period_bounds(
    anchor_utc: dt.datetime, zone: str, cadence: Cadence, index: int
) -> tuple[dt.datetime, dt.datetime]:
    """Return (start, end) in UTC of the period `index` periods after the anchor (0 = the anchor's own)."""
    return boundary(anchor_utc, zone, cadence, index), boundary(anchor_utc, zone, cadence, index + 1)


def local_date(moment: dt.datetime, zone: str) -> dt.date:
    """Return the calendar date of `moment` in `zone`."""
    return moment.astimezone(ZoneInfo(zone)).date()


def days_between(earlier: dt.datetime, later: dt.datetime, zone: str) -> int:
    """Return how many calendar days in `zone` separate two moments (negative when `later` is earlier)."""
    return (local_date(later, zone) - local_date(earlier, zone)).days


def shift_days(moment: dt.datetime, zone: str, days: int) -> dt.datetime:
    """Move `moment` by whole calendar days in `zone`, keeping its local time of day."""
    wall = local_anchor(moment, zone)
    return wall_to_utc(wall + dt.timedelta(days=days), zone)
