"""Time helpers: UTC in the database, the tenant's zone for display and reporting periods."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

_clock_override: list[dt.datetime] = []


def utcnow() -> dt.datetime:
    """Return the current time in UTC (tests may freeze it with `frozen_time`)."""
    if _clock_override:
        return _clock_override[-1]
    return dt.datetime.now(dt.UTC)


class frozen_time:
    """Freeze `utcnow()` at `moment` inside the block (time-travel tests, no sleeping)."""

    def __init__(self, moment: dt.datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("frozen_time needs an aware datetime")
        self.moment = moment.astimezone(dt.UTC)

    def __enter__(self) -> dt.datetime:
        _clock_override.append(self.moment)
        return self.moment

    def __exit__(self, *exc: object) -> None:
        _clock_override.pop()


def to_zone(moment: dt.datetime, zone: str) -> dt.datetime:
    """Convert an aware UTC datetime to the named zone."""
    return moment.astimezone(ZoneInfo(zone))


def format_in_zone(moment: dt.datetime | None, zone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format `moment` as a person in `zone` would read it; empty for None."""
    if moment is None:
        return ""
    return to_zone(moment, zone).strftime(fmt)
