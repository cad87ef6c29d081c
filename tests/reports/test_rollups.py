"""Daily rollups: tenant-local days, incremental refresh equal to a rebuild, the CLI, the periodic job."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask.testing import FlaskCliRunner
from sqlalchemy import select

from reports import rollup_tasks, rollups
from reports.localtime import local_day_of
from reports.models import DailyGrants, DailyLines, DailyOrders, DailyRefunds
from saas.extensions import db
from saas.timeutil import frozen_time
from tests.factories import Shop
from tests.reports.dashboard_fixtures import at, card_key_product, first_grant, redeem, refresh, refund, sell

FACT_COLUMNS = {
    DailyOrders: ("day", "channel", "currency", "orders", "revenue", "fees"),
    DailyLines: ("day", "channel", "bundle_id", "currency", "orders", "units", "revenue"),
    DailyRefunds: ("day", "channel", "currency", "refunds", "amount"),
    DailyGrants: ("day", "channel", "bundle_id", "right_id", "delivered", "revoked", "redeemed", "cost"),
}


def snapshot() -> dict[str, set[tuple[Any, ...]]]:
    """Every rollup row of the bound tenant, without ids."""
    found = {}
    for model, columns in FACT_COLUMNS.items():
        rows = db.session.execute(select(*[getattr(model, c) for c in columns]))
        found[model.__tablename__] = {tuple(row) for row in rows}
    return found


def test_incremental_refresh_recomputes_only_touched_days_and_equals_a_rebuild(shop: Shop) -> None:
    with shop.bound():
        video = card_key_product("视频月卡", price=1990, unit_cost=700)
        january = sell(video, at(2026, 1, 10))
        sell(video, at(2026, 1, 20))
        first = refresh()
        assert first.full and first.days == 2
        since = dt.datetime.now(dt.UTC)
        redeem(first_grant(january), at(2026, 2, 3))  # a January delivery redeemed in February
        refund(sell(video, at(2026, 2, 5)), at(2026, 3, 1))
        touched = rollups.touched_days(since, "Asia/Shanghai")
        assert touched == {dt.date(2026, 1, 10), dt.date(2026, 2, 5), dt.date(2026, 3, 1)}, (
            "10 January (its grant redeemed), 5 February (sold) and 1 March (refunded); not 20 January"
        )
        assert not refresh().full
        incremental = snapshot()
        rollups.rebuild_rollups()
        assert snapshot() == incremental
        grants = {row[0]: row for row in incremental["report_daily_grants"]}
        assert grants[dt.date(2026, 1, 10)][6] == 1, "the January cohort now has its redemption"


def test_refreshing_one_tenant_leaves_the_others_rollups_alone(shop: Shop, other_shop: Shop) -> None:
    with shop.bound():
        sell(card_key_product("视频月卡", price=1990), at(2026, 1, 10))
    with other_shop.bound():
        sell(card_key_product("音乐月卡", price=990), at(2026, 1, 11))
    totals = rollup_tasks.refresh_rollups_everywhere()
    assert totals["tenants"] >= 2
    with shop.bound():
        days = {row[0] for row in snapshot()["report_daily_orders"]}
    with other_shop.bound():
        their_days = {row[0] for row in snapshot()["report_daily_orders"]}
    assert days == {dt.date(2026, 1, 10)} and their_days == {dt.date(2026, 1, 11)}


def test_days_are_the_tenants_calendar_days_in_any_time_zone(shop: Shop) -> None:
    shop.tenant.time_zone = "America/New_York"
    db.session.commit()
    moments = [
        dt.datetime(2026, 3, 8, 4, 30, tzinfo=dt.UTC),  # 23:30 on 7 March (EST)
        dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC),  # 03:30 on 8 March (EDT, after the change)
        dt.datetime(2026, 11, 1, 4, 30, tzinfo=dt.UTC),  # 00:30 on 1 November (EDT)
        dt.datetime(2026, 11, 2, 4, 30, tzinfo=dt.UTC),  # 23:30 on 1 November (EST)
    ]
    with shop.bound():
        video = card_key_product("视频月卡", price=1990)
        for moment in moments:
            sell(video, moment)
        rollups.rebuild_rollups()
        days = sorted(row[0] for row in snapshot()["report_daily_orders"])
    assert days == sorted({local_day_of(m, "America/New_York") for m in moments})
    assert days == [dt.date(2026, 3, 7), dt.date(2026, 3, 8), dt.date(2026, 11, 1)]


def test_the_cli_rebuilds_one_tenants_rollups(runner: FlaskCliRunner, shop: Shop) -> None:
    with shop.bound():
        sell(card_key_product("视频月卡", price=1990), at(2026, 1, 10))
    result = runner.invoke(args=["reports", "rebuild-rollups", "--tenant", shop.slug])
    assert result.exit_code == 0, result.output
    assert f"{shop.slug}: 1 days rebuilt" in result.output
    with shop.bound():
        assert snapshot()["report_daily_orders"]
    missing = runner.invoke(args=["reports", "rebuild-rollups", "--tenant", "nobody"])
    assert missing.exit_code != 0 and "no tenant" in missing.output


def test_the_refresh_job_keeps_up_with_changes_made_between_runs(shop: Shop) -> None:
    with shop.bound():
        video = card_key_product("视频月卡", price=1990)
        sell(video, at(2026, 1, 10))
        rollup_tasks.refresh_tenant_rollups(shop.tenant.id)
        with frozen_time(at(2026, 1, 12)):
            order = sell(video, at(2026, 1, 12))
        assert rollup_tasks.refresh_tenant_rollups(shop.tenant.id) >= 1
        assert {row[0] for row in snapshot()["report_daily_orders"]} == {
            dt.date(2026, 1, 10),
            dt.date(2026, 1, 12),
        }
        assert order.id
