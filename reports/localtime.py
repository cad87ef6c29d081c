"""Tenant-local calendar days in SQL, on PostgreSQL and SQLite, and UTC bounds of local days.

PostgreSQL converts with `AT TIME ZONE`. SQLite has no time zones, so the zone's UTC offsets are written
into the statement: one `datetime(col, '+N seconds')` per span of constant offset (a single expression for
Asia/Shanghai, a CASE over the daylight-saving changes elsewhere). SQLite stores times as UTC text
`YYYY-MM-DD HH:MM:SS.ffffff`, so bound times are passed in that form.
"""

from __future__ import annotations

import datetime as dt
import itertools
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from saas.extensions import db

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_SCAN_FROM = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
_SCAN_TO = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def is_postgres() -> bool:
    """Tell whether the app's database is PostgreSQL."""
    return bool(db.engine.dialect.name == "postgresql")


def db_time(moment: dt.datetime) -> Any:
    """Return an aware UTC time as the database compares it (text on SQLite)."""
    utc = moment.astimezone(dt.UTC)
    return utc if is_postgres() else utc.strftime(_SQLITE_TIME)


def db_day(day: dt.date) -> Any:
    """Return a date as the database stores it (ISO text on SQLite)."""
    return day if is_postgres() else day.isoformat()


def as_date(value: Any) -> dt.date:
    """Read a date column value (SQLite returns text)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def local_midnight(day: dt.date, zone: str) -> dt.datetime:
    """Return the UTC moment a tenant-local day starts."""
    return dt.datetime.combine(day, dt.time(), ZoneInfo(zone)).astimezone(dt.UTC)


def local_day_of(moment: dt.datetime, zone: str) -> dt.date:
    """Return the tenant-local calendar day of a UTC moment."""
    return moment.astimezone(ZoneInfo(zone)).date()


@lru_cache(maxsize=64)
def offset_spans(zone: str) -> tuple[tuple[dt.datetime | None, int], ...]:
    """Return the zone's UTC offsets as (from, seconds) spans, from 1990 to 2100; the first `from` is None."""
    info = ZoneInfo(zone)

    def offset(moment: dt.datetime) -> int:
        delta = moment.astimezone(info).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    spans: list[tuple[dt.datetime | None, int]] = [(None, offset(_SCAN_FROM))]
    moment = _SCAN_FROM
    step = dt.timedelta(days=1)
    while moment < _SCAN_TO:
        following = moment + step
        if offset(following) != spans[-1][1]:
            low, high = moment, following
            while high - low > dt.timedelta(seconds=1):
                middle = low + (high - low) / 2
                if offset(middle) == spans[-1][1]:
                    low = middle
                else:
                    high = middle
            spans.append((high.replace(microsecond=0), offset(following)))
        moment = following
    return tuple(spans)


def local_timestamp_sql(column: str, zone: str) -> str:
    """Return SQL for `column` (UTC) as tenant-local wall-clock time.

    On PostgreSQL the statement must bind `:tz` to the zone name (see `zone_params`).
    """
    if is_postgres():
        return f"({column} AT TIME ZONE :tz)"
    spans = offset_spans(zone)
    if len(spans) == 1:
        return f"datetime({column}, '{spans[0][1]:+d} seconds')"
    branches = []
    for (_, seconds), (next_start, _) in itertools.pairwise(spans):
        assert next_start is not None
        branches.append(
            f"WHEN {column} < '{next_start.strftime(_SQLITE_TIME)}' "
            f"THEN datetime({column}, '{seconds:+d} seconds')"
        )
    return f"(CASE {' '.join(branches)} ELSE datetime({column}, '{spans[-1][1]:+d} seconds') END)"


def local_day_sql(column: str, zone: str) -> str:
    """Return SQL for the tenant-local calendar day of `column` (a date; ISO text on SQLite)."""
    local = local_timestamp_sql(column, zone)
    return f"CAST({local} AS DATE)" if is_postgres() else f"date({local})"


def local_month_sql(column: str, zone: str) -> str:
    """Return SQL for the tenant-local month of `column` as text, `YYYY-MM`."""
    local = local_timestamp_sql(column, zone)
    return f"to_char({local}, 'YYYY-MM')" if is_postgres() else f"strftime('%Y-%m', {local})"


def local_day_of_month_sql(column: str, zone: str) -> str:
    """Return SQL for the tenant-local day of the month (1–31) of `column`."""
    local = local_timestamp_sql(column, zone)
    if is_postgres():
        return f"CAST(EXTRACT(DAY FROM {local}) AS INTEGER)"
    return f"CAST(strftime('%d', {local}) AS INTEGER)"


def zone_params(zone: str) -> dict[str, Any]:
    """Return the parameters `local_*_sql` expressions need bound (`:tz` on PostgreSQL)."""
    return {"tz": zone} if is_postgres() else {}
