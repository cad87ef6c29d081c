"""The filters every dashboard takes: a period in the tenant's time zone, a channel, a bundle, a right.

Periods are whole tenant-local days, `start` to `end` inclusive; presets are counted back from today in the
tenant's zone. Filters are read from query-string arguments (`period`, `start`, `end`, `channel`,
`bundle`, `right`) the same way by the pages, the CSV downloads and the JSON API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from catalog.models import Bundle, BundleItem, Plan, Right
from reports.localtime import local_day_of, local_midnight
from saas.extensions import db
from saas.timeutil import utcnow
from tenants.scoping import current_tenant_id

PRESETS: dict[str, Any] = {
    "last_7_days": _l("Last 7 days"),
    "last_30_days": _l("Last 30 days"),
    "last_90_days": _l("Last 90 days"),
    "this_month": _l("This month"),
    "last_month": _l("Last month"),
    "custom": _l("Custom"),
}
DEFAULT_PRESET = "last_30_days"
MAX_DAYS = 3 * 366


class FilterError(ValueError):
    """A filter value that cannot be used (a bad date, an unknown bundle); the message is for people."""


@dataclass(frozen=True)
class Period:
    """Tenant-local days `start`..`end` (inclusive) in `zone`."""

    preset: str
    start: dt.date
    end: dt.date
    zone: str

    @property
    def utc_start(self) -> dt.datetime:
        """Return the UTC moment the first day begins."""
        return local_midnight(self.start, self.zone)

    @property
    def utc_end(self) -> dt.datetime:
        """Return the UTC moment after the last day ends (exclusive)."""
        return local_midnight(self.end + dt.timedelta(days=1), self.zone)

    @property
    def days(self) -> list[dt.date]:
        """Return every day of the period, in order."""
        return [self.start + dt.timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def today_in(zone: str) -> dt.date:
    """Return today's date in the zone."""
    return local_day_of(utcnow(), zone)


def preset_period(preset: str, zone: str) -> Period:
    """Return the period a preset names, as of today in the tenant's zone."""
    today = today_in(zone)
    if preset.startswith("last_") and preset.endswith("_days"):
        days = int(preset.removeprefix("last_").removesuffix("_days"))
        return Period(preset, today - dt.timedelta(days=days - 1), today, zone)
    first_of_month = today.replace(day=1)
    if preset == "this_month":
        return Period(preset, first_of_month, today, zone)
    if preset == "last_month":
        end = first_of_month - dt.timedelta(days=1)
        return Period(preset, end.replace(day=1), end, zone)
    raise FilterError(str(_l("Unknown period.")))


def _parse_day(raw: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError as error:
        raise FilterError(str(_l("The %(what)s date must look like 2026-01-31.", what=what))) from error


def parse_period(args: Mapping[str, str], zone: str) -> Period:
    """Read `period` (a preset, default last 30 days) or `start`/`end` (custom) from the arguments."""
    preset = (args.get("period") or "").strip()
    if not preset:
        preset = "custom" if args.get("start") or args.get("end") else DEFAULT_PRESET
    if preset not in PRESETS:
        raise FilterError(str(_l("Unknown period.")))
    if preset != "custom":
        period = preset_period(preset, zone)
        if not _dates_moved(args, period):
            return period
    return _custom_period(args, zone)


def _dates_moved(args: Mapping[str, str], period: Period) -> bool:
    """Tell whether the form's dates were changed away from the preset's (the person meant Custom)."""
    start, end = (args.get("start") or "").strip(), (args.get("end") or "").strip()
    if not start or not end:
        return False
    return (start, end) != (period.start.isoformat(), period.end.isoformat())


def _custom_period(args: Mapping[str, str], zone: str) -> Period:
    """Read `start` and `end` (default: the last 30 days), inclusive, at most three years apart."""
    today = today_in(zone)
    start = (
        _parse_day(args["start"], str(_l("start"))) if args.get("start") else today - dt.timedelta(days=29)
    )
    end = _parse_day(args["end"], str(_l("end"))) if args.get("end") else today
    if end < start:
        raise FilterError(str(_l("The period ends before it starts.")))
    if (end - start).days >= MAX_DAYS:
        raise FilterError(str(_l("A period can be at most three years long.")))
    return Period("custom", start, end, zone)


@dataclass(frozen=True)
class Filters:
    """What a dashboard shows: the period and, optionally, one channel, bundle and right."""

    period: Period
    channel: str | None = None
    bundle_id: int | None = None
    right_id: int | None = None

    def query_args(self) -> dict[str, str]:
        """Return the filters as query-string arguments (for links and downloads)."""
        args = {"period": self.period.preset}
        if self.period.preset == "custom":
            args.update(start=self.period.start.isoformat(), end=self.period.end.isoformat())
        if self.channel:
            args["channel"] = self.channel
        if self.bundle_id:
            args["bundle"] = str(self.bundle_id)
        if self.right_id:
            args["right"] = str(self.right_id)
        return args

    def with_period(self, period: Period) -> Filters:
        """Return the same filters over another period."""
        return replace(self, period=period)

    @property
    def narrows_catalog(self) -> bool:
        """Tell whether a bundle or a right is chosen."""
        return bool(self.bundle_id or self.right_id)


def _object_id(raw: str | None, model: type[Any], unknown: Any) -> int | None:
    if not raw or not raw.strip():
        return None
    if not raw.strip().isdigit():
        raise FilterError(str(unknown))
    object_id = int(raw.strip())
    if db.session.get(model, (current_tenant_id(), object_id)) is None:
        raise FilterError(str(unknown))
    return object_id


def parse_filters(args: Mapping[str, str], zone: str) -> Filters:
    """Read every filter from query-string arguments; FilterError names what is wrong."""
    channel = (args.get("channel") or "").strip() or None
    if channel is not None and len(channel) > 64:
        raise FilterError(str(_l("Unknown channel.")))
    return Filters(
        period=parse_period(args, zone),
        channel=channel,
        bundle_id=_object_id(args.get("bundle"), Bundle, _l("Unknown bundle.")),
        right_id=_object_id(args.get("right"), Right, _l("Unknown right.")),
    )


def default_filters(zone: str) -> Filters:
    """Return the filters of a dashboard opened without any."""
    return Filters(preset_period(DEFAULT_PRESET, zone))


# ---------------------------------------------------------------- catalog filters as id sets


def bundles_matching(filters: Filters) -> list[int] | None:
    """Return the bundle ids the bundle/right filters allow (None: no restriction).

    A right filter allows the bundles that contain the right (in the catalog as it is now).
    """
    if not filters.narrows_catalog:
        return None
    statement = select(Bundle.id)
    if filters.bundle_id:
        statement = statement.where(Bundle.id == filters.bundle_id)
    if filters.right_id:
        statement = statement.where(
            Bundle.id.in_(select(BundleItem.bundle_id).where(BundleItem.right_id == filters.right_id))
        )
    return list(db.session.scalars(statement))


def plans_matching(filters: Filters) -> list[int] | None:
    """Return the plan ids of the bundles the filters allow (None: no restriction)."""
    bundles = bundles_matching(filters)
    if bundles is None:
        return None
    if not bundles:
        return []
    return list(db.session.scalars(select(Plan.id).where(Plan.bundle_id.in_(bundles))))


def rights_matching(filters: Filters) -> list[int] | None:
    """Return the right ids the filters allow: the right, or the rights of the bundle (None: all)."""
    if filters.right_id:
        return [filters.right_id]
    if filters.bundle_id:
        return list(
            db.session.scalars(select(BundleItem.right_id).where(BundleItem.bundle_id == filters.bundle_id))
        )
    return None
