"""Periodic work runs in every tenant in turn; one tenant's failure is rolled back and reported at the end."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from saas.extensions import db
from tenants import audit
from tenants.fanout import FanOutFailed, for_each_tenant
from tenants.models import AuditEvent
from tenants.scoping import current_tenant_id
from tests.factories import Shop


def _audit_count(shop: Shop, action: str) -> int:
    with shop.bound():
        return db.session.scalar(select(func.count()).where(AuditEvent.action == action)) or 0


def test_the_work_runs_once_in_each_tenant_with_that_tenant_bound(shop: Shop, other_shop: Shop) -> None:
    seen = for_each_tenant(current_tenant_id, "naming the tenant")
    assert seen == {shop.tenant.id: shop.tenant.id, other_shop.tenant.id: other_shop.tenant.id}


def test_a_failing_tenant_is_rolled_back_the_others_keep_their_work_and_the_job_fails_naming_it(
    app: Flask, shop: Shop, other_shop: Shop
) -> None:
    def note_then_fail_in_the_rival_shop() -> int:
        audit.record("fanout.visited")
        db.session.flush()
        if current_tenant_id() == other_shop.tenant.id:
            raise ValueError("the rival's data is broken")
        db.session.commit()
        return 1

    with pytest.raises(FanOutFailed) as failure:
        for_each_tenant(note_then_fail_in_the_rival_shop, "visiting")

    assert failure.value.tenant_ids == [other_shop.tenant.id]
    assert f"visiting failed for tenants [{other_shop.tenant.id}]" in str(failure.value)
    assert isinstance(failure.value.__cause__, ValueError)
    assert _audit_count(shop, "fanout.visited") == 1
    assert _audit_count(other_shop, "fanout.visited") == 0


def test_the_work_can_be_limited_to_some_tenants(shop: Shop, other_shop: Shop) -> None:
    assert for_each_tenant(current_tenant_id, "naming the tenant", [other_shop.tenant.id]) == {
        other_shop.tenant.id: other_shop.tenant.id
    }
