"""Objects for every URL variable, so route tests can fill any rule of the app.

The isolation and permission tests walk every URL rule. For each variable in a rule (`<int:right_id>`)
they call the factory registered here to create an object in a given shop and use its id. A new route
with a new variable fails those tests until its factory is added here: nobody has to remember.
Each factory runs with the shop's tenant bound, commits, and returns the value for the URL.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from saas.auth.services import create_user
from saas.extensions import db
from saas.ids import new_id
from tenants.models import ApiKey, Invitation, JobRun, Membership
from tests.campaigns import factories as campaign_factories
from tests.catalog import factories as catalog_factories
from tests.factories import PASSWORD, Shop
from tests.integrations import factories as integration_factories
from tests.orders import factories as order_helpers
from tests.orders.risk import factories as risk_factories
from tests.orders.subscriptions import factories as subscription_factories
from tests.reports.reconciliation import factories as reconciliation_factories


def _invitation(shop: Shop) -> int:
    invitation = Invitation(email="invitee@elsewhere.test", role="analyst")
    db.session.add(invitation)
    db.session.commit()
    return invitation.id


def _api_key(shop: Shop) -> int:
    key = ApiKey(name="fixture", prefix=f"p{new_id() % 10**12}", secret_hash="0" * 64, scopes=[])
    db.session.add(key)
    db.session.commit()
    return key.id


def _member(shop: Shop) -> int:
    """A fresh analyst, so a test that removes or demotes them leaves the shop's own members alone."""
    user = create_user(f"member-{new_id()}@{shop.slug}.test", "Fixture member", PASSWORD)
    db.session.flush()
    db.session.add(Membership(tenant_id=shop.tenant.id, user_id=user.id, role="analyst"))
    db.session.commit()
    return user.id


def _job_run(shop: Shop) -> int:
    run = JobRun(kind="fixture", title="fixture")
    db.session.add(run)
    db.session.commit()
    return run.id


def _customer(shop: Shop) -> int:
    from orders.models import Customer

    customer = Customer(email=f"c{new_id()}@example.test", name="Fixture customer")
    db.session.add(customer)
    db.session.commit()
    return customer.id


def _order_line(shop: Shop) -> int:
    from orders.models import OrderLine

    order = order_helpers.order_row()
    return int(db.session.scalars(select(OrderLine.id).where(OrderLine.order_id == order.id)).one())


def _family_share(shop: Shop) -> int:
    """A purchase shared with a family member (portal routes)."""
    from orders.models import Customer, OrderLine
    from orders.portal.models import FamilyShare

    order = order_helpers.order_row()
    line_id = db.session.scalars(select(OrderLine.id).where(OrderLine.order_id == order.id)).one()
    member = Customer(phone=f"+86139{new_id() % 10**8:08d}", name="Fixture member")
    db.session.add(member)
    db.session.flush()
    share = FamilyShare(
        owner_customer_id=order.customer_id,
        member_customer_id=member.id,
        member_phone=member.phone,
        order_line_id=line_id,
    )
    db.session.add(share)
    db.session.commit()
    return share.id


URL_OBJECTS: dict[str, Callable[[Shop], int | str]] = {
    "invitation_id": _invitation,
    "key_id": _api_key,
    "user_id": _member,
    "job_id": _job_run,
    # catalog (plain rows: creating them leaves no audit trail that the route tests would count)
    "right_id": lambda shop: catalog_factories.right_row().id,
    "bundle_id": lambda shop: catalog_factories.bundle_row().id,
    "plan_id": lambda shop: catalog_factories.plan_row().id,
    "batch_id": lambda shop: catalog_factories.batch_row().id,
    "card_key_id": lambda shop: catalog_factories.card_key_row().id,
    "upload_token": lambda shop: catalog_factories.make_upload(catalog_factories.right_row()),
    # orders
    "order_id": lambda shop: order_helpers.order_row().id,
    "customer_id": _customer,
    "grant_id": lambda shop: order_helpers.grant_row().id,
    # the customer portal (plain rows, no audit trail)
    "line_id": _order_line,
    "share_id": _family_share,
    # integrations (plain rows, no audit trail)
    "channel_id": lambda shop: integration_factories.channel_row().id,
    "mapping_id": lambda shop: integration_factories.mapping_row().id,
    "inbox_delivery_id": lambda shop: integration_factories.inbox_row().id,
    "spend_id": lambda shop: integration_factories.spend_row(),
    "endpoint_id": lambda shop: integration_factories.endpoint_row(),
    "webhook_delivery_id": lambda shop: integration_factories.webhook_delivery_row(),
    # subscriptions (plain rows, no audit trail)
    "subscription_id": lambda shop: subscription_factories.subscription_row().id,
    # reconciliation (plain rows, no audit trail; nested ids point at one chain)
    "reconciliation_run_id": lambda shop: reconciliation_factories.run_row(),
    "reconciliation_file_id": lambda shop: reconciliation_factories.file_row(),
    "settlement_id": lambda shop: reconciliation_factories.settlement_row(),
    "settlement_match_id": lambda shop: reconciliation_factories.match_row(),
    # risk control (plain rows, no audit trail)
    "held_order_id": lambda shop: risk_factories.held_order_row(),
    "risk_flag_id": lambda shop: risk_factories.flag_row(),
    "block_entry_id": lambda shop: risk_factories.block_row(),
    # partner campaigns (plain rows, no audit trail; a code belongs to the newest campaign)
    "campaign_id": lambda shop: campaign_factories.campaign_row().id,
    "campaign_code_id": lambda shop: campaign_factories.code_row().id,
    "partner_id": lambda shop: campaign_factories.partner_row().id,
}
