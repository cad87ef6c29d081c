"""Owners and admins invite members by email, change roles and remove members; the last owner stays."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from saas.extensions import db
from tenants.models import AuditEvent, Membership
from tests.factories import Outbox, Shop, login


def invitation_path(outbox: Outbox, email: str) -> str:
    (mail,) = outbox.to(email)
    match = re.search(r"http://quanyi\.test(/invitations/\S+)", outbox.body(mail))
    assert match is not None
    return match.group(1)


def test_an_invited_person_joins_with_the_role_they_were_given(
    app: Flask, client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    login(client, shop.owner)
    client.post(f"/t/{shop.slug}/team/invite", data={"email": "newbie@x.test", "role": "finance"})
    path = invitation_path(outbox, "newbie@x.test")
    newcomer = app.test_client()
    assert newcomer.post(path, data={"name": "New Bie", "password": "newbie-password"}).status_code == 302
    page = newcomer.get(f"/t/{shop.slug}/").get_data(as_text=True)
    assert 'data-testid="role">Finance' in page
    assert newcomer.post(path, data={"password": "newbie-password"}).status_code == 410  # used once


def test_an_existing_user_accepts_while_signed_in(
    app: Flask, client: FlaskClient, shop: Shop, other_shop: Shop, outbox: Outbox
) -> None:
    login(client, shop.owner)
    client.post(f"/t/{shop.slug}/team/invite", data={"email": other_shop.owner.email, "role": "analyst"})
    path = invitation_path(outbox, other_shop.owner.email)
    theirs = app.test_client()
    login(theirs, other_shop.owner)
    assert theirs.post(path).status_code == 302
    with shop.bound():
        assert db.session.get(Membership, (shop.tenant.id, other_shop.owner.id)).role == "analyst"


def test_a_tampered_invitation_link_is_refused(client: FlaskClient) -> None:
    assert client.get("/invitations/not-a-real-token").status_code == 410


def test_an_admin_cannot_create_owners(client: FlaskClient, shop: Shop, outbox: Outbox) -> None:
    login(client, shop.members["admin"])
    response = client.post(
        f"/t/{shop.slug}/team/invite", data={"email": "boss2@x.test", "role": "owner"}, follow_redirects=True
    )
    assert "Only an owner" in response.get_data(as_text=True)
    assert outbox.to("boss2@x.test") == []


def test_role_changes_are_recorded_with_actor_and_reason(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    analyst = shop.members["analyst"]
    client.post(
        f"/t/{shop.slug}/team/{analyst.id}/role", data={"role": "finance", "reason": "month-end help"}
    )
    with shop.bound():
        assert db.session.get(Membership, (shop.tenant.id, analyst.id)).role == "finance"
    with shop.bound():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "member.role_changed")).one()
    assert (event.actor, event.reason, event.details) == (
        shop.owner.email,
        "month-end help",
        {"before": "analyst", "after": "finance"},
    )


def test_the_last_owner_can_neither_leave_nor_be_demoted(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    response = client.post(f"/t/{shop.slug}/team/{shop.owner.id}/remove", follow_redirects=True)
    assert "last owner" in response.get_data(as_text=True)
    response = client.post(
        f"/t/{shop.slug}/team/{shop.owner.id}/role", data={"role": "admin"}, follow_redirects=True
    )
    assert "last owner" in response.get_data(as_text=True)
    with shop.bound():
        assert db.session.get(Membership, (shop.tenant.id, shop.owner.id)).role == "owner"


def test_a_removed_member_loses_access(app: Flask, client: FlaskClient, shop: Shop) -> None:
    support = shop.members["support"]
    theirs = app.test_client()
    login(theirs, support)
    assert theirs.get(f"/t/{shop.slug}/").status_code == 200
    login(client, shop.owner)
    client.post(f"/t/{shop.slug}/team/{support.id}/remove", data={"reason": "left the company"})
    assert theirs.get(f"/t/{shop.slug}/").status_code == 404


def test_the_audit_log_page_lists_and_filters_events(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    client.post(f"/t/{shop.slug}/team/{shop.members['analyst'].id}/role", data={"role": "support"})
    client.post(f"/t/{shop.slug}/team/invite", data={"email": "z@x.test", "role": "analyst"})
    page = client.get(f"/t/{shop.slug}/audit?action=member.role").get_data(as_text=True)
    assert "member.role_changed" in page and "member.invited" not in page


def test_the_checklist_ticks_itself_when_the_team_is_invited(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/").get_data(as_text=True)
    assert 'data-item="team" data-done="yes"' in page  # the shop already has several members
