"""Order factories: rights, bundles, plans and card keys made directly (no audit rows), and orders through the
real services. Each runs in the bound tenant and commits."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select

from catalog import keyring
from catalog.fileformats import mask
from catalog.models import Bundle, BundleItem, CardKey, CardKeyBatch, Plan, Right
from orders import services
from orders.models import Customer, Grant, Order, OrderLine
from saas.extensions import db
from saas.ids import new_id
from saas.timeutil import utcnow
from tests.catalog.factories import card_key_row


@dataclass
class Product:
    """A sellable plan and the rights of its bundle."""

    plan: Plan
    bundle: Bundle
    rights: list[Right]

    @property
    def right(self) -> Right:
        return self.rights[0]


def make_right(name: str = "视频月卡", kind: str = "card_key", **values: object) -> Right:
    right = Right(name=name, kind=kind, currency="CNY", **values)
    db.session.add(right)
    db.session.commit()
    return right


def make_product(*rights: Right, price: int = 1990, quantities: tuple[int, ...] = ()) -> Product:
    """A bundle of the given rights (one card-key right by default) with one monthly plan."""
    chosen = list(rights) or [make_right()]
    bundle = Bundle(name=" + ".join(r.name for r in chosen), status="active")
    db.session.add(bundle)
    db.session.flush()
    for position, right in enumerate(chosen):
        quantity = quantities[position] if position < len(quantities) else 1
        db.session.add(
            BundleItem(bundle_id=bundle.id, right_id=right.id, quantity=quantity, position=position)
        )
    plan = Plan(bundle_id=bundle.id, name="月卡", period_unit="month", price=price, currency="CNY")
    db.session.add(plan)
    db.session.commit()
    return Product(plan, bundle, chosen)


def add_keys(
    right: Right,
    count: int,
    *,
    prefix: str = "K",
    unit_cost: int = 800,
    expires_at: dt.datetime | None = None,
    max_deliveries: int = 1,
) -> list[str]:
    """Put `count` card keys of the right in stock as one batch; return their card numbers."""
    keyring.ensure_tenant_keys()
    cipher = keyring.cipher_for(right.id)
    batch = CardKeyBatch(
        right_id=right.id,
        supplier="test supplier",
        unit_cost=unit_cost,
        currency="CNY",
        expires_at=expires_at,
        imported=count,
    )
    db.session.add(batch)
    db.session.flush()
    cards = []
    existing = (
        db.session.scalar(select(func.count()).select_from(CardKey).where(CardKey.right_id == right.id)) or 0
    )
    for n in range(count):
        card = f"{prefix}{right.id % 100000:05d}{existing + n:06d}"
        cards.append(card)
        db.session.add(
            CardKey(
                right_id=right.id,
                batch_id=batch.id,
                status="available",
                code_hash=cipher.lookup_hash(card.encode()),
                ciphertext=cipher.encrypt(f"{card}\x1fS{card}".encode()),
                mask=mask(card),
                expires_at=expires_at,
                max_deliveries=max_deliveries,
            )
        )
    db.session.commit()
    return cards


def order_request(
    product: Product,
    external_id: str,
    *,
    quantity: int = 1,
    paid: bool = False,
    email: str | None = "buyer@example.test",
    channel: str = "shop",
    reserve_minutes: int | None = None,
) -> services.OrderRequest:
    return services.OrderRequest(
        channel=channel,
        external_id=external_id,
        source="api",
        customer=services.CustomerInfo(
            email=email, phone="13800000000" if email is None else None, name="Buyer"
        ),
        lines=[services.LineRequest(product.plan.id, quantity)],
        paid=paid,
        reserve_minutes=reserve_minutes,
    )


def place_order(product: Product, external_id: str, **kwargs: object) -> Order:
    return services.create_order(order_request(product, external_id, **kwargs)).order  # type: ignore[arg-type]


def grants_of(order_id: int) -> list[Grant]:
    return list(
        db.session.scalars(
            select(Grant)
            .where(Grant.order_id == order_id)
            .order_by(Grant.order_line_id, Grant.unit_index, Grant.item_index)
            .execution_options(populate_existing=True)
        )
    )


def key_status_counts(right_id: int) -> dict[str, int]:
    rows = db.session.execute(
        select(CardKey.status, func.count()).where(CardKey.right_id == right_id).group_by(CardKey.status)
    )
    return {status: int(count) for status, count in rows}


def keys_in_two_live_grants() -> int:
    """Count single-use keys held by more than one live grant (must always be 0)."""
    live = ("reserved", "delivered", "redeemed")
    rows = db.session.execute(
        select(Grant.card_key_id, func.count())
        .join(CardKey, (CardKey.tenant_id == Grant.tenant_id) & (CardKey.id == Grant.card_key_id))
        .where(Grant.status.in_(live), CardKey.max_deliveries == 1)
        .group_by(Grant.card_key_id)
        .having(func.count() > 1)
    ).all()
    return len(rows)


# ---------------------------------------------------------------- plain rows (no audit), for the route tests


def order_row() -> Order:
    """A fulfilled order with one delivered card-key grant, written directly (no audit rows)."""
    key = card_key_row(f"ROUTE-{new_id()}")
    right = db.session.get(Right, (key.tenant_id, key.right_id))
    assert right is not None
    product = make_product(right)
    customer = Customer(email=f"route-{new_id()}@example.test", name="Route fixture")
    db.session.add(customer)
    db.session.flush()
    now = utcnow()
    order = Order(
        channel="shop",
        external_id=f"ROUTE-{new_id()}",
        source="api",
        customer_id=customer.id,
        status="fulfilled",
        currency="CNY",
        total=product.plan.price,
        paid_at=now,
        fulfilled_at=now,
    )
    db.session.add(order)
    line = OrderLine(
        order_id=order.id,
        plan_id=product.plan.id,
        bundle_id=product.bundle.id,
        title="fixture",
        quantity=1,
        unit_price=product.plan.price,
        currency="CNY",
        total=product.plan.price,
        snapshot=product.plan.snapshot(),
    )
    db.session.add(line)
    db.session.flush()
    key.status, key.delivery_count, key.delivered_at = "delivered", 1, now
    db.session.add(
        Grant(
            order_id=order.id,
            order_line_id=line.id,
            customer_id=customer.id,
            unit_index=0,
            item_index=0,
            right_id=right.id,
            right_name=right.name,
            kind="card_key",
            status="delivered",
            card_key_id=key.id,
            mask=key.mask,
            queued_at=now,
            delivered_at=now,
        )
    )
    db.session.commit()
    return order


def grant_row() -> Grant:
    grant = grants_of(order_row().id)[0]
    return grant
