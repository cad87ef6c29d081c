"""Card-key allocation that cannot double-sell, and the key state changes that follow a grant.

PostgreSQL: one `WITH pick AS (… FOR UPDATE SKIP LOCKED) UPDATE … FROM pick … RETURNING` statement
(never `id IN (SELECT … LIMIT n)`, which can take more than n rows under concurrency). SQLite: the same
UPDATE … RETURNING inside `immediate_transaction()` (BEGIN IMMEDIATE), where writers run one at a time.
Keys are taken earliest expiry first, then oldest batch, then oldest key. A reusable key stays
`available` until its `delivery_count` reaches `max_deliveries`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, bindparam, select, text, update

from catalog import keyring
from catalog.fileformats import mask as mask_code
from catalog.fileformats import split_payload
from catalog.models import CODE_ALPHABET, CardKey
from orders.models import Grant
from saas.extensions import UTCDateTime, db, is_postgres
from saas.timeutil import utcnow
from tenants.scoping import current_tenant_id

_PICK_POSTGRES = """
WITH pick AS (
    SELECT id FROM card_keys
    WHERE tenant_id = :tenant_id AND right_id = :right_id AND status = 'available'
      AND (expires_at IS NULL OR expires_at > :now)
    ORDER BY expires_at NULLS LAST, batch_id, id
    LIMIT :n
    FOR UPDATE SKIP LOCKED
)
UPDATE card_keys k
SET delivery_count = k.delivery_count + 1,
    status = CASE WHEN k.delivery_count + 1 >= k.max_deliveries THEN :final_status ELSE 'available' END,
    {stamp} = :now
FROM pick
WHERE k.tenant_id = :tenant_id AND k.id = pick.id
RETURNING k.id, k.expires_at, k.batch_id, k.max_deliveries, k.mask,
    (SELECT b.unit_cost FROM card_key_batches b WHERE b.tenant_id = k.tenant_id AND b.id = k.batch_id)
"""

# SQLite: the caller holds the write lock (BEGIN IMMEDIATE), so the subquery's LIMIT cannot be overtaken.
_PICK_SQLITE = """
UPDATE card_keys
SET delivery_count = delivery_count + 1,
    status = CASE WHEN delivery_count + 1 >= max_deliveries THEN :final_status ELSE 'available' END,
    {stamp} = :now
WHERE tenant_id = :tenant_id AND id IN (
    SELECT id FROM card_keys
    WHERE tenant_id = :tenant_id AND right_id = :right_id AND status = 'available'
      AND (expires_at IS NULL OR expires_at > :now)
    ORDER BY expires_at NULLS LAST, batch_id, id
    LIMIT :n
)
RETURNING id, expires_at, batch_id, max_deliveries, mask,
    (SELECT b.unit_cost FROM card_key_batches b WHERE b.tenant_id = card_keys.tenant_id
     AND b.id = card_keys.batch_id)
"""


@dataclass(frozen=True)
class AllocatedKey:
    """One key taken from stock: its id and what a grant needs to know about it."""

    id: int
    expires_at: dt.datetime | None
    batch_id: int | None
    unit_cost: int
    mask: str = ""

    @property
    def fifo_key(self) -> tuple[bool, dt.datetime, int, int]:
        """Sort key: earliest expiry first (no expiry last), then oldest batch, then oldest key."""
        return (
            self.expires_at is None,
            self.expires_at or dt.datetime.max.replace(tzinfo=dt.UTC),
            self.batch_id or 0,
            self.id,
        )


def _pick_statement(reserve: bool) -> str:
    stamp = "reserved_at" if reserve else "delivered_at"
    return (_PICK_POSTGRES if is_postgres() else _PICK_SQLITE).format(stamp=stamp)


def _take_once(right_id: int, count: int, reserve: bool, now: dt.datetime) -> list[AllocatedKey]:
    statement = (
        text(_pick_statement(reserve))
        .bindparams(bindparam("now", type_=UTCDateTime()))
        .columns(id=BigInteger(), expires_at=UTCDateTime(), batch_id=BigInteger(), max_deliveries=Integer())
    )
    rows = db.session.execute(
        statement,
        {
            "tenant_id": current_tenant_id(),
            "right_id": right_id,
            "n": count,
            "now": now,
            "final_status": "reserved" if reserve else "delivered",
        },
    ).all()
    return [
        AllocatedKey(int(row[0]), row[1], row[2], int(row[5] or 0) // max(1, int(row[3] or 1)), str(row[4]))
        for row in rows
    ]


def allocate_card_keys(right_id: int, count: int, *, reserve: bool = False) -> list[AllocatedKey]:
    """Take up to `count` deliveries of the right's keys from stock, atomically; return them in FIFO order.

    Call inside `immediate_transaction()`; the caller commits. Fewer keys than asked means the rest is a
    backorder. With reusable keys one statement takes each key once, so it repeats until it has enough
    or stock is empty.
    """
    now = utcnow()
    taken: list[AllocatedKey] = []
    while len(taken) < count:
        batch = _take_once(right_id, count - len(taken), reserve, now)
        if not batch:
            break
        taken.extend(sorted(batch, key=lambda key: key.fifo_key))
    return taken


def confirm_reserved_keys(key_ids: Iterable[int]) -> None:
    """Turn keys reserved for an unpaid order into delivered keys (the order was paid)."""
    ids = list(key_ids)
    if not ids:
        return
    now = utcnow()
    db.session.execute(
        update(CardKey)
        .where(CardKey.id.in_(ids), CardKey.status == "reserved")
        .values(status="delivered", delivered_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(CardKey)
        .where(CardKey.id.in_(ids), CardKey.status == "available")
        .values(delivered_at=now)
        .execution_options(synchronize_session=False)
    )


def release_card_keys(key_ids: Iterable[int]) -> None:
    """Give one delivery of each key back to stock (a hold released, an undelivered grant cancelled)."""
    for key_id in key_ids:  # a key can appear twice (a reusable key held by two grants)
        db.session.execute(
            update(CardKey)
            .where(
                CardKey.id == key_id,
                CardKey.status.in_(("reserved", "available", "delivered")),
                CardKey.delivery_count > 0,
            )
            .values(status="available", delivery_count=CardKey.delivery_count - 1, reserved_at=None)
            .execution_options(synchronize_session=False)
        )


def void_card_keys(key_ids: Iterable[int], reason: str) -> None:
    """Void delivered single-use keys so they are never sold again (a refunded delivery).

    A reusable key shared with other customers is left alone: its used slot is not given back.
    """
    ids = list(key_ids)
    if ids:
        db.session.execute(
            update(CardKey)
            .where(CardKey.id.in_(ids), CardKey.status == "delivered", CardKey.max_deliveries == 1)
            .values(status="void", voided_at=utcnow(), void_reason=reason[:500])
            .execution_options(synchronize_session=False)
        )


def mark_keys_redeemed(key_ids: Iterable[int]) -> None:
    """Record that delivered single-use keys were used."""
    ids = list(key_ids)
    if ids:
        db.session.execute(
            update(CardKey)
            .where(CardKey.id.in_(ids), CardKey.status == "delivered", CardKey.max_deliveries == 1)
            .values(status="redeemed", redeemed_at=utcnow())
            .execution_options(synchronize_session=False)
        )


# ---------------------------------------------------------------- generated codes


@dataclass(frozen=True)
class GeneratedCode:
    """A fresh redemption code, ready to store: its keyed hash, ciphertext and mask (never the code)."""

    code: str
    code_hash: bytes
    ciphertext: bytes
    mask: str


def new_code(prefix: str, length: int) -> str:
    """Return a crypto-random code: the prefix, then `length` characters without look-alikes."""
    return prefix + "".join(secrets.choice(CODE_ALPHABET) for _ in range(max(4, length)))


def generate_code(right_id: int, prefix: str, length: int) -> GeneratedCode:
    """Generate a code for the right that no grant of the right holds yet, encrypted and hashed."""
    cipher = keyring.cipher_for(right_id)
    for _ in range(10):
        code = new_code(prefix, length)
        code_hash = cipher.lookup_hash(code.encode())
        taken = db.session.scalar(
            select(Grant.id).where(Grant.right_id == right_id, Grant.code_hash == code_hash).limit(1)
        )
        if taken is None:
            return GeneratedCode(code, code_hash, cipher.encrypt(f"\x1f{code}".encode()), mask_code(code))
    raise RuntimeError("could not generate a unique code; lengthen the right's codes")


def reveal_grant_secret(grant: Grant) -> str:
    """Return what the customer needs to use a grant: card number and secret, the code, or the link."""
    if grant.kind == "link":
        return grant.link_url
    if grant.kind == "topup":
        return grant.topup_reference or ""
    cipher = keyring.cipher_for(grant.right_id)
    if grant.card_key_id is not None:
        key = db.session.get(CardKey, (grant.tenant_id, grant.card_key_id))
        if key is None:
            return ""
        card, secret = split_payload(cipher.decrypt(bytes(key.ciphertext)))
    elif grant.code_ciphertext is not None:
        card, secret = split_payload(cipher.decrypt(bytes(grant.code_ciphertext)))
    else:
        return ""
    return f"{card} {secret}".strip()
