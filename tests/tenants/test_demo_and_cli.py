"""`quanyi demo` makes a demo tenant with a member of each role; `quanyi tenants create` makes a tenant."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from saas.auth.services import create_user
from saas.extensions import db
from tenants.demo import DEMO_PASSWORD
from tenants.models import Membership, Tenant
from tenants.roles import Role
from tenants.scoping import tenant_bound


def test_demo_prints_a_login_per_role_and_runs_twice_safely(runner: Any, client: FlaskClient) -> None:
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    for role in Role:
        assert f"{role.value}@demo.example.com" in first.output
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0 and "Found demo tenant" in second.output
    tenant = db.session.query(Tenant).filter_by(slug="demo").one()
    with tenant_bound(tenant.id):  # memberships are under RLS on PostgreSQL
        assert db.session.query(Membership).filter_by(tenant_id=tenant.id).count() == len(Role)
    assert (
        client.post(
            "/login", data={"email": "analyst@demo.example.com", "password": DEMO_PASSWORD}
        ).status_code
        == 302
    )
    assert client.get("/t/demo/").status_code == 200


def test_demo_is_refused_in_production_unless_asked_and_then_its_logins_work_there(
    app: Flask, runner: Any, client: FlaskClient
) -> None:
    app.config["ENV_NAME"] = "production"  # what the command and the login form read
    refused = runner.invoke(args=["demo"])
    assert refused.exit_code != 0 and "--in-production" in refused.output
    assert db.session.query(Tenant).filter_by(slug="demo").count() == 0

    made = runner.invoke(args=["demo", "--in-production"])
    assert made.exit_code == 0, made.output
    assert DEMO_PASSWORD not in made.output  # no well-known password on a production owner account
    line = next(line for line in made.output.splitlines() if line.split()[:1] == ["owner"])
    _, email, password = line.split()
    assert client.post("/login", data={"email": email, "password": password}).status_code == 302
    assert client.get("/t/demo/").status_code == 200


def test_demo_moves_its_old_test_domain_logins_to_addresses_that_can_sign_in(
    app: Flask, runner: Any, client: FlaskClient
) -> None:
    old = create_user("owner@demo.quanyi.test", "Demo owner", DEMO_PASSWORD)
    db.session.commit()
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    db.session.refresh(old)
    assert old.email == "owner@demo.example.com"
    app.config["ENV_NAME"] = "production"
    answer = client.post("/login", data={"email": "owner@demo.example.com", "password": DEMO_PASSWORD})
    assert answer.status_code == 302


def test_tenants_create_makes_a_tenant_and_its_owner(runner: Any) -> None:
    result = runner.invoke(
        args=[
            "tenants",
            "create",
            "--name",
            "Nova",
            "--slug",
            "nova",
            "--owner-email",
            "o@nova.test",
            "--owner-password",
            "nova-password-1",
        ]
    )
    assert result.exit_code == 0, result.output
    assert db.session.query(Tenant).filter_by(slug="nova").one().name == "Nova"


def test_tenants_create_explains_a_bad_address(runner: Any) -> None:
    result = runner.invoke(
        args=[
            "tenants",
            "create",
            "--name",
            "X",
            "--slug",
            "No Spaces!",
            "--owner-email",
            "o@x.test",
            "--owner-password",
            "long-enough-pw",
        ]
    )
    assert result.exit_code != 0 and "lower-case" in result.output


def test_the_demo_shop_is_healthy_with_one_labelled_failed_topup(runner: Any) -> None:
    from orders.models import Grant, Order
    from tenants.scoping import tenant_bound

    assert runner.invoke(args=["demo"]).exit_code == 0
    tenant = db.session.query(Tenant).filter_by(slug="demo").one()
    with tenant_bound(tenant.id):
        topups = db.session.query(Grant).filter(Grant.topup_state.isnot(None)).all()
        failed = [g for g in topups if g.topup_state != "succeeded"]
        assert len(topups) >= 2 and len(failed) == 1, [(g.topup_state, g.topup_error) for g in topups]
        assert "有意" in (failed[0].topup_error or "") and "演示" in (failed[0].topup_error or "")
        order = db.session.get(Order, (tenant.id, failed[0].order_id))
        assert order is not None and "deliberate" in order.note
