"""The monthly run is made on the tenant's first day of the month, once, and finance gets a link by mail."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from reports.reconciliation.models import ReconciliationRun
from reports.reconciliation.tasks import schedule_monthly_reconciliation_everywhere
from saas.extensions import db
from saas.timeutil import frozen_time
from tests.factories import Outbox, Shop
from tests.reports.books import JANUARY, local, make_january_books


def runs_of(shop: Shop) -> list[ReconciliationRun]:
    with shop.bound():
        return list(db.session.scalars(select(ReconciliationRun)))


def test_the_monthly_run_is_made_on_the_tenants_first_day_once_and_mailed_as_a_link(
    shop: Shop, other_shop: Shop, outbox: Outbox
) -> None:
    with shop.bound():
        shop.tenant.created_at = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
        make_january_books(shop)
    other_shop.tenant.time_zone = "America/New_York"
    other_shop.tenant.created_at = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    db.session.commit()

    with frozen_time(local(2026, 1, 31, 23, 50)):  # still January in Shanghai
        assert schedule_monthly_reconciliation_everywhere() == 0
    with frozen_time(local(2026, 2, 1, 0, 20)):  # 1 February in Shanghai, still 31 January in New York
        assert schedule_monthly_reconciliation_everywhere() == 1
        assert schedule_monthly_reconciliation_everywhere() == 0  # idempotent per tenant-month
    with frozen_time(local(2026, 2, 1, 14, 0)):  # now 1 February in New York too
        assert schedule_monthly_reconciliation_everywhere() == 1
        assert schedule_monthly_reconciliation_everywhere() == 0

    [run] = runs_of(shop)
    with shop.bound():
        assert (run.period_label, run.schedule_key, run.status) == ("2026-01", "monthly:2026-01", "succeeded")
        assert {name: getattr(run, name) for name in JANUARY} == JANUARY
        run_id = run.id
    [theirs] = runs_of(other_shop)
    with other_shop.bound():
        assert theirs.time_zone == "America/New_York" and theirs.period_label == "2026-01"

    mails = outbox.to("finance@acme.test")
    assert len(mails) == 1
    body = Outbox.body(mails[0])
    assert f"http://quanyi.test/t/acme/reconciliation/runs/{run_id}" in body
    assert "47.36" in body
    assert not [part for part in mails[0].iter_attachments()], "a link, never the file"
    assert outbox.to("analyst@acme.test") == []
    assert len(runs_of(shop)) + len(runs_of(other_shop)) == 2


def test_a_tenant_created_after_the_month_gets_no_run_for_it(shop: Shop) -> None:
    shop.tenant.created_at = dt.datetime(2026, 2, 1, 0, 5, tzinfo=dt.UTC)
    db.session.commit()
    with frozen_time(dt.datetime(2026, 3, 1, 1, 0, tzinfo=dt.UTC)):  # 1 March, 09:00 in Shanghai
        assert schedule_monthly_reconciliation_everywhere() == 1
    [run] = runs_of(shop)
    with shop.bound():
        assert run.period_label == "2026-02"
    with frozen_time(dt.datetime(2026, 2, 1, 1, 0, tzinfo=dt.UTC)):
        assert schedule_monthly_reconciliation_everywhere() == 0
