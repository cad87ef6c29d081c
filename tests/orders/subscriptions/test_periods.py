"""Period arithmetic: in the tenant's zone, month ends clamp, and every end is counted from the anchor."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from orders.subscriptions.periods import Cadence, add_months, boundary, days_between, period_bounds

SHANGHAI = "Asia/Shanghai"


def at(zone: str, *parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)  # type: ignore[misc]


def local_ends(anchor: dt.datetime, zone: str, cadence: Cadence, count: int) -> list[str]:
    return [
        boundary(anchor, zone, cadence, n).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
        for n in range(1, count + 1)
    ]


def test_a_month_from_the_31st_is_the_last_day_of_february_then_the_31st_again() -> None:
    anchor = at(SHANGHAI, 2026, 1, 31, 9, 30)
    assert local_ends(anchor, SHANGHAI, Cadence.of("month"), 4) == [
        "2026-02-28 09:30",
        "2026-03-31 09:30",
        "2026-04-30 09:30",
        "2026-05-31 09:30",
    ]


def test_in_a_leap_year_february_has_its_29th() -> None:
    anchor = at(SHANGHAI, 2028, 1, 31, 9, 30)
    assert local_ends(anchor, SHANGHAI, Cadence.of("month"), 2) == ["2028-02-29 09:30", "2028-03-31 09:30"]


def test_a_yearly_plan_bought_on_29_february_renews_on_the_28th_and_on_the_29th_in_leap_years() -> None:
    anchor = at(SHANGHAI, 2028, 2, 29, 20, 0)
    assert local_ends(anchor, SHANGHAI, Cadence.of("year"), 4) == [
        "2029-02-28 20:00",
        "2030-02-28 20:00",
        "2031-02-28 20:00",
        "2032-02-29 20:00",
    ]


def test_a_quarter_is_three_months_from_the_anchor() -> None:
    anchor = at(SHANGHAI, 2026, 11, 30, 8, 0)
    assert local_ends(anchor, SHANGHAI, Cadence.of("quarter"), 3) == [
        "2027-02-28 08:00",
        "2027-05-30 08:00",
        "2027-08-30 08:00",
    ]


def test_a_days_plan_adds_calendar_days() -> None:
    anchor = at(SHANGHAI, 2026, 2, 20, 10, 0)
    assert local_ends(anchor, SHANGHAI, Cadence.of("days", 10), 2) == ["2026-03-02 10:00", "2026-03-12 10:00"]


def test_the_month_end_is_the_tenants_not_utcs() -> None:
    # 31 Jan 20:00 in Los Angeles is already 1 Feb in UTC: the period still ends on LA's last day of February.
    zone = "America/Los_Angeles"
    anchor = at(zone, 2026, 1, 31, 20, 0)
    assert anchor.day == 1 and anchor.month == 2  # in UTC
    assert local_ends(anchor, zone, Cadence.of("month"), 2) == ["2026-02-28 20:00", "2026-03-31 20:00"]


def test_a_daylight_saving_change_keeps_the_local_hour() -> None:
    zone = "America/Los_Angeles"
    start, end = period_bounds(at(zone, 2026, 3, 1, 9, 0), zone, Cadence.of("month"), 0)
    assert end.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") == "2026-04-01 09:00"
    assert (end - start) == dt.timedelta(days=31, hours=-1)  # one hour shorter in absolute time


def test_calendar_days_are_counted_in_the_zone() -> None:
    # 23:30 and 00:30 the next day in Shanghai: one calendar day apart, though an hour in time.
    assert days_between(at(SHANGHAI, 2026, 3, 1, 23, 30), at(SHANGHAI, 2026, 3, 2, 0, 30), SHANGHAI) == 1
    assert days_between(at(SHANGHAI, 2026, 3, 5, 12), at(SHANGHAI, 2026, 3, 2, 12), SHANGHAI) == -3


def test_adding_months_clamps_and_unknown_periods_are_refused() -> None:
    assert add_months(dt.datetime(2026, 8, 31), 1) == dt.datetime(2026, 9, 30)
    assert add_months(dt.datetime(2026, 12, 15), 2) == dt.datetime(2027, 2, 15)
    with pytest.raises(ValueError):
        Cadence.of("days", 0)
    with pytest.raises(ValueError):
        Cadence.of("week")
