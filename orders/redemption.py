"""Redemption (核销): a delivered grant is marked used — by the customer, the API, a supplier's report of used
codes, or a channel. Each report is logged with its outcome; unknown or refunded codes are rejected, and a
redemption reported after a refund is flagged.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select, update

from catalog import keyring
from catalog.fileformats import mask as mask_code
from catalog.models import CardKey
from orders.allocation import mark_keys_redeemed
from orders.events import OrderError, actor_label
from orders.models import REDEMPTION_SOURCES, Grant, Redemption
from orders.risk.rules import announce, flag_payload, note_redemption
from saas.crypto import CryptoError
from saas.events import publish
from saas.extensions import db, immediate_transaction
from saas.timeutil import utcnow
from tenants import audit
from tenants.scoping import current_tenant_id

MAX_REPORT_ROWS = 100_000


@dataclass
class RedemptionOutcome:
    """What one redemption report did: `redeemed`, `already_redeemed`, or a `rejected_*`/`unknown` refusal."""

    outcome: str
    grant_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome in ("redeemed", "already_redeemed")


def _log(
    grant_id: int | None,
    source: str,
    outcome: str,
    *,
    code_mask: str = "",
    reference: str = "",
    actor: str,
    flagged: bool = False,
) -> None:
    db.session.add(
        Redemption(
            grant_id=grant_id,
            source=source,
            outcome=outcome,
            code_mask=code_mask,
            reference=reference[:200],
            actor=actor,
            flagged=flagged,
            at=utcnow(),
        )
    )


def redeem_grant(
    grant_id: int,
    *,
    source: str,
    reference: str = "",
    actor: str | None = None,
    code_mask: str = "",
    ip: str | None = None,
) -> RedemptionOutcome:
    """Mark a delivered grant redeemed, once; a repeat is accepted and changes nothing.

    Risk control records the address (`ip`) and flags a redemption after a refund or over the per-IP
    velocity rule; the flags are announced after the commit.
    """
    if source not in REDEMPTION_SOURCES:
        raise OrderError(_("Unknown redemption source."))
    label = actor_label(actor)
    with immediate_transaction(db.session()):
        grant = db.session.get(Grant, (current_tenant_id(), grant_id), populate_existing=True)
        if grant is None:
            _log(None, source, "unknown", code_mask=code_mask, reference=reference, actor=label)
            audit.record("redemption.rejected", "grant", grant_id, why="unknown", source=source)
            db.session.commit()
            return RedemptionOutcome("unknown")
        now = utcnow()
        seconds = int((now - grant.delivered_at).total_seconds()) if grant.delivered_at else None
        changed = db.session.execute(
            update(Grant)
            .where(Grant.id == grant_id, Grant.status == "delivered")
            .values(status="redeemed", redeemed_at=now, redemption_source=source, seconds_to_redeem=seconds)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        db.session.refresh(grant)
        outcome = _record_outcome(grant, bool(changed), source, reference, label, code_mask or grant.mask)
        flagged = [flag_payload(f) for f in note_redemption(grant.id, ip, outcome.outcome)]
        event = {
            "grant_id": str(grant.id),
            "order_id": str(grant.order_id),
            "right_id": str(grant.right_id),
            "source": source,
            "redeemed_at": grant.redeemed_at.isoformat() if grant.redeemed_at else None,
        }
        db.session.commit()
    if changed:
        publish("grant.redeemed", current_tenant_id(), event, key=f"grant.redeemed:{grant_id}")
    announce(current_tenant_id(), flagged)
    return outcome


def _record_outcome(
    grant: Grant, changed: bool, source: str, reference: str, actor: str, code_mask: str
) -> RedemptionOutcome:
    if changed:
        if grant.card_key_id is not None:
            mark_keys_redeemed([grant.card_key_id])
        _log(grant.id, source, "redeemed", code_mask=code_mask, reference=reference, actor=actor)
        audit.record("grant.redeemed", "grant", grant.id, source=source, order_id=str(grant.order_id))
        return RedemptionOutcome("redeemed", grant.id)
    if grant.status == "redeemed":
        _log(grant.id, source, "already_redeemed", code_mask=code_mask, reference=reference, actor=actor)
        return RedemptionOutcome("already_redeemed", grant.id)
    if grant.status in ("revoked", "cancelled"):
        grant.flag = "redeemed_after_refund"
        _log(
            grant.id,
            source,
            "rejected_refunded",
            code_mask=code_mask,
            reference=reference,
            actor=actor,
            flagged=True,
        )
        audit.record("redemption.rejected", "grant", grant.id, why="refunded", source=source, flagged=True)
        return RedemptionOutcome("rejected_refunded", grant.id)
    _log(grant.id, source, "rejected_not_delivered", code_mask=code_mask, reference=reference, actor=actor)
    audit.record("redemption.rejected", "grant", grant.id, why=f"status {grant.status}", source=source)
    return RedemptionOutcome("rejected_not_delivered", grant.id)


def find_grant_by_code(code: str) -> Grant | None:
    """Find the grant a code or card key was delivered as (keyed hash lookup, nothing decrypted)."""
    code = code.strip()
    if not code:
        return None
    keyring.ensure_tenant_keys()
    try:
        cipher = keyring.cipher_for(0)  # the lookup hash depends on the tenant only, not on the right
    except CryptoError:
        return None
    for candidate in dict.fromkeys((code, code.upper())):
        code_hash = cipher.lookup_hash(candidate.encode())
        grant = db.session.scalar(select(Grant).where(Grant.code_hash == code_hash).limit(1))
        if grant is not None:
            return grant
        key_ids = list(db.session.scalars(select(CardKey.id).where(CardKey.code_hash == code_hash)))
        if key_ids:
            return db.session.scalar(
                select(Grant)
                .where(Grant.card_key_id.in_(key_ids))
                .order_by(Grant.status != "delivered", Grant.id.desc())
                .limit(1)
            )
    return None


def redeem_code(
    code: str, *, source: str, reference: str = "", actor: str | None = None
) -> RedemptionOutcome:
    """Redeem the grant a code was delivered as; an unknown code is rejected and logged."""
    if source not in REDEMPTION_SOURCES:
        raise OrderError(_("Unknown redemption source."))
    grant = find_grant_by_code(code)
    masked = mask_code(code.strip()) if code.strip() else ""
    if grant is None:
        label = actor_label(actor)
        _log(None, source, "unknown", code_mask=masked, reference=reference, actor=label)
        audit.record(
            "redemption.rejected", "redemption", None, why="unknown code", code=masked, source=source
        )
        db.session.commit()
        return RedemptionOutcome("unknown")
    return redeem_grant(grant.id, source=source, reference=reference, actor=actor, code_mask=masked)


def redeem_from_channel(
    channel: str, *, code: str | None = None, grant_id: int | None = None, reference: str = ""
) -> RedemptionOutcome:
    """A channel reports that a right was used (by code or grant id)."""
    actor = f"channel {channel}"
    if grant_id is not None:
        return redeem_grant(grant_id, source="channel", reference=reference, actor=actor)
    return redeem_code(code or "", source="channel", reference=reference, actor=actor)


@dataclass
class ReportResult:
    """Counts of a supplier's redemption report, by outcome."""

    counts: dict[str, int] = field(default_factory=dict)
    rows: int = 0

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.rows += 1


def codes_in_report(data: bytes) -> list[str]:
    """Read the used codes from a supplier's CSV: the column named code/卡密/card, else the first column."""
    text = data.decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column, start = 0, 0
    for index, name in enumerate(header):
        if name in ("code", "codes", "card", "card_no", "卡号", "卡密", "兑换码", "券码"):
            column, start = index, 1
            break
    codes = [row[column].strip() for row in rows[start:] if len(row) > column and row[column].strip()]
    if len(codes) > MAX_REPORT_ROWS:
        raise OrderError(_("A report holds at most %(n)s codes.", n=MAX_REPORT_ROWS))
    return codes


def import_redemption_report(data: bytes, *, supplier: str = "", actor: str | None = None) -> ReportResult:
    """Redeem every code of a supplier's report of used codes; return the counts by outcome."""
    result = ReportResult()
    reference = f"supplier report {supplier}".strip()
    for code in codes_in_report(data):
        result.add(redeem_code(code, source="supplier_report", reference=reference, actor=actor).outcome)
    with immediate_transaction(db.session()):
        audit.record(
            "redemption.report_imported", "redemption", None, supplier=supplier, counts=result.counts
        )
        db.session.commit()
    return result


def redemptions_of(grant_ids: list[int]) -> list[Redemption]:
    """Return the redemption log of some grants, oldest first."""
    if not grant_ids:
        return []
    return list(
        db.session.scalars(
            select(Redemption).where(Redemption.grant_id.in_(grant_ids)).order_by(Redemption.at)
        )
    )
