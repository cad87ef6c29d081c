"""Campaign use cases: partners and campaigns, issuing codes (export once, or one by one), voiding.

Claims live in `campaigns.claims`, figures and statements in `campaigns.figures`. Each use case validates,
acts and commits once; every change leaves an audit row.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Executable

from campaigns.models import (
    BILLING_BASES,
    ISSUE_MODES,
    PARTNER_KINDS,
    Campaign,
    CampaignCode,
    Partner,
)
from catalog import keyring
from catalog.fileformats import mask
from catalog.models import CODE_ALPHABET, Plan
from orders.events import OrderError
from orders.services import check_sellable
from saas import crypto
from saas.extensions import db, immediate_transaction
from saas.ids import new_id
from saas.timeutil import utcnow
from tenants import audit
from tenants.scoping import current_tenant_id

CODE_LENGTH = 16  # 31^16 ≈ 7·10^23 codes: a guess finds one of a million issued codes once in 10^17 tries
CODE_GROUP = 4
MAX_UNITS = 100_000
_UNIFORM_BELOW = 256 - 256 % len(CODE_ALPHABET)  # 248 for 31 characters
LOOKUP_CONTEXT = 0  # codes of every campaign share the tenant's hash key, so a code is found by itself


def rows_changed(statement: Executable) -> int:
    """Run a conditional UPDATE and return how many rows it changed (0: another call won, or nothing left)."""
    result = db.session.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]


class CampaignError(ValueError):
    """A campaign request the rules refuse; the message says why, in the reader's language."""


# ---------------------------------------------------------------- codes


def new_code() -> str:
    """Return a crypto-random code without look-alike characters (no 0/O/1/I/L), in groups of four."""
    picked: list[str] = []
    while len(picked) < CODE_LENGTH:
        # Random bytes below the largest multiple of the alphabet's size map uniformly onto it (rejection
        # sampling); 8× faster than `secrets.choice` per character, which was 40 % of a 10,000-code export.
        picked += [
            CODE_ALPHABET[b % len(CODE_ALPHABET)] for b in secrets.token_bytes(24) if b < _UNIFORM_BELOW
        ]
    raw = "".join(picked[:CODE_LENGTH])
    return "-".join(raw[i : i + CODE_GROUP] for i in range(0, CODE_LENGTH, CODE_GROUP))


def normalise_code(value: str) -> str:
    """Read a code as typed: case, spaces and dashes do not matter."""
    return "".join(ch for ch in value.upper() if ch.isalnum())


def code_hash(value: str, lookup: crypto.CardKeyCipher | None = None) -> bytes:
    """Return the keyed hash that finds a code in the bound tenant (its data keys must exist)."""
    cipher = lookup or keyring.cipher_for(LOOKUP_CONTEXT)
    return cipher.lookup_hash(b"campaign-code:" + normalise_code(value).encode())


def reveal_code(code: CampaignCode) -> str:
    """Decrypt one code (the partner API's repeat of an idempotent issue)."""
    return keyring.cipher_for(code.campaign_id).decrypt(bytes(code.code_ciphertext)).decode()


def _new_code_row(
    campaign: Campaign, via: str, idempotency_key: str | None = None
) -> tuple[str, CampaignCode]:
    plain = new_code()
    row = CampaignCode(
        campaign_id=campaign.id,
        code_hash=code_hash(plain),
        code_ciphertext=keyring.cipher_for(campaign.id).encrypt(plain.encode()),
        mask=mask(plain),
        status="issued",
        issued_via=via,
        idempotency_key=idempotency_key,
        issued_at=utcnow(),
    )
    return plain, row


# ---------------------------------------------------------------- reading


def get_campaign(campaign_id: int) -> Campaign | None:
    """Return one of the bound tenant's campaigns."""
    return db.session.get(Campaign, (current_tenant_id(), campaign_id))


def get_code(code_id: int) -> CampaignCode | None:
    """Return one of the bound tenant's codes."""
    return db.session.get(CampaignCode, (current_tenant_id(), code_id))


def get_partner(partner_id: int) -> Partner | None:
    """Return one of the bound tenant's partners."""
    return db.session.get(Partner, (current_tenant_id(), partner_id))


def partners() -> list[Partner]:
    """The bound tenant's partners, by name."""
    return list(db.session.scalars(select(Partner).order_by(Partner.name)))


def campaigns_list() -> list[Campaign]:
    """The bound tenant's campaigns, newest first."""
    return list(db.session.scalars(select(Campaign).order_by(Campaign.id.desc())))


def is_expired(campaign: Campaign, now: dt.datetime | None = None) -> bool:
    """Tell whether the campaign's window has closed."""
    return (now or utcnow()) >= campaign.ends_at


# ---------------------------------------------------------------- partners and campaigns


def partner_channel(partner: Partner) -> str:
    """The channel of a partner's claims: dashboards and reconciliation show them by partner."""
    return f"partner:{partner.name}"[:64]


def create_partner(
    name: str, kind: str, contact_name: str = "", contact_email: str = "", contact_phone: str = ""
) -> Partner:
    """Add a partner (enterprise, bank, carrier) with whom to talk."""
    name = name.strip()
    if not name or len(name) > 120:
        raise CampaignError(_("A partner needs a name (at most 120 characters)."))
    if kind not in PARTNER_KINDS:
        raise CampaignError(_("Unknown partner kind."))
    if db.session.scalar(select(Partner.id).where(Partner.name == name)) is not None:
        raise CampaignError(_("There is a partner named %(name)s already.", name=name))
    partner = Partner(
        name=name,
        kind=kind,
        contact_name=contact_name.strip()[:120],
        contact_email=contact_email.strip()[:254],
        contact_phone=contact_phone.strip()[:32],
    )
    db.session.add(partner)
    audit.record("campaign.partner_created", "campaign_partner", partner.id, name=name, kind=kind)
    db.session.commit()
    return partner


@dataclass
class CampaignRequest:
    """What a new campaign needs."""

    partner_id: int
    name: str
    plan_id: int
    units: int
    partner_price: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    claims_per_customer: int = 1
    billing_basis: str = "claimed"
    issue_mode: str = "export"


def _check_campaign(request: CampaignRequest) -> Plan:
    if get_partner(request.partner_id) is None:
        raise CampaignError(_("Choose a partner."))
    if not request.name.strip() or len(request.name) > 120:
        raise CampaignError(_("A campaign needs a name (at most 120 characters)."))
    if not 1 <= request.units <= MAX_UNITS:
        raise CampaignError(_("A campaign has 1 to %(n)s codes.", n=MAX_UNITS))
    if request.partner_price < 0:
        raise CampaignError(_("Prices cannot be negative."))
    if request.ends_at <= request.starts_at:
        raise CampaignError(_("The campaign must end after it starts."))
    if not 1 <= request.claims_per_customer <= 1000:
        raise CampaignError(_("Each customer may claim 1 to 1000 codes."))
    if request.billing_basis not in BILLING_BASES:
        raise CampaignError(_("Unknown billing basis."))
    if request.issue_mode not in ISSUE_MODES:
        raise CampaignError(_("Unknown way of issuing codes."))
    plan = db.session.get(Plan, (current_tenant_id(), request.plan_id))
    if plan is None:
        raise CampaignError(_("Choose a plan."))
    try:
        check_sellable(plan.name, plan.snapshot())
    except OrderError as error:
        raise CampaignError(str(error)) from error
    return plan


def create_campaign(request: CampaignRequest) -> Campaign:
    """Create a campaign: one plan for one partner, its units, window, limits and billing basis."""
    plan = _check_campaign(request)
    partner = get_partner(request.partner_id)
    assert partner is not None
    snapshot = plan.snapshot()
    campaign = Campaign(
        partner_id=request.partner_id,
        name=request.name.strip(),
        plan_id=plan.id,
        bundle_id=plan.bundle_id,
        title=f"{snapshot['bundle']['name']} · {plan.name}"[:240],
        units=request.units,
        partner_price=request.partner_price,
        currency=plan.currency,
        starts_at=request.starts_at,
        ends_at=request.ends_at,
        claims_per_customer=request.claims_per_customer,
        billing_basis=request.billing_basis,
        issue_mode=request.issue_mode,
        status="active",
        issued_count=0,
        created_by=audit.current_actor()[1],
    )
    campaign.channel = partner_channel(partner)
    db.session.add(campaign)
    audit.record(
        "campaign.created",
        "campaign",
        campaign.id,
        partner_id=request.partner_id,
        plan_id=plan.id,
        units=request.units,
        partner_price=request.partner_price,
        billing_basis=request.billing_basis,
        issue_mode=request.issue_mode,
    )
    db.session.commit()
    return campaign


# ---------------------------------------------------------------- issuing


def export_codes(campaign_id: int) -> list[str]:
    """Generate every code of an export campaign and return them, once: a second export is refused.

    The codes leave only in the response that asked for them (the file for the partner); stored, they are
    encrypted and hashed, and no page or call shows them again in bulk.
    """
    campaign = get_campaign(campaign_id)
    if campaign is None:
        raise CampaignError(_("Unknown campaign."))
    if campaign.issue_mode != "export":
        raise CampaignError(_("This campaign's codes are issued one at a time by the partner API."))
    keyring.ensure_tenant_keys()
    now = utcnow()
    actor = audit.current_actor()[1]
    with immediate_transaction(db.session()):
        try:
            won = rows_changed(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    Campaign.exported_at.is_(None),
                    Campaign.status == "active",
                    Campaign.ends_at > now,
                )
                .values(exported_at=now, exported_by=actor, issued_count=Campaign.units)
            )
            if not won:
                db.session.rollback()
                raise CampaignError(_refusal(campaign_id, now))
            codes = [new_code() for _i in range(campaign.units)]
            seal, lookup = keyring.cipher_for(campaign.id), keyring.cipher_for(LOOKUP_CONTEXT)
            tenant_id = current_tenant_id()
            rows = [
                {
                    "tenant_id": tenant_id,
                    "id": new_id(),
                    "campaign_id": campaign.id,
                    "code_hash": code_hash(plain, lookup),
                    "code_ciphertext": seal.encrypt(plain.encode()),
                    "mask": mask(plain),
                    "status": "issued",
                    "issued_via": "export",
                    "issued_at": now,
                    "refused_claims": 0,
                }
                for plain in codes
            ]
            db.session.execute(insert(CampaignCode), rows)  # one executemany: 100,000 codes in seconds
            audit.record("campaign.exported", "campaign", campaign_id, count=len(codes))
            db.session.commit()
        except CampaignError:
            raise
        except BaseException:
            db.session.rollback()
            raise
    return codes


def _refusal(campaign_id: int, now: dt.datetime) -> str:
    campaign = db.session.get(Campaign, (current_tenant_id(), campaign_id), populate_existing=True)
    assert campaign is not None
    if campaign.status == "void":
        return _("The campaign is void.")
    if campaign.ends_at <= now:
        return _("The campaign has ended.")
    if campaign.exported_at is not None:
        return _(
            "The codes were exported already, on %(when)s: they are never shown again.",
            when=campaign.exported_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
    return _("All %(n)s codes of the campaign are issued.", n=campaign.units)


@dataclass
class IssuedCode:
    """A code issued by the partner API: the code itself, its row, and whether this call created it."""

    code: str
    row: CampaignCode
    created: bool


def _code_by_key(campaign_id: int, idempotency_key: str) -> CampaignCode | None:
    return db.session.scalar(
        select(CampaignCode).where(
            CampaignCode.campaign_id == campaign_id, CampaignCode.idempotency_key == idempotency_key
        )
    )


def issue_code(campaign_id: int, idempotency_key: str) -> IssuedCode:
    """Issue one code of an API campaign; the same idempotency key gives the same code again."""
    key = idempotency_key.strip()
    if not key or len(key) > 128:
        raise CampaignError(_("An idempotency key is required (at most 128 characters)."))
    campaign = get_campaign(campaign_id)
    if campaign is None:
        raise CampaignError(_("Unknown campaign."))
    if campaign.issue_mode != "api":
        raise CampaignError(_("This campaign's codes were exported as a file; the API issues none."))
    keyring.ensure_tenant_keys()
    existing = _code_by_key(campaign_id, key)
    if existing is not None:
        return IssuedCode(reveal_code(existing), existing, False)
    now = utcnow()
    with immediate_transaction(db.session()):
        try:
            won = rows_changed(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    Campaign.status == "active",
                    Campaign.ends_at > now,
                    Campaign.issued_count < Campaign.units,
                )
                .values(issued_count=Campaign.issued_count + 1)
            )
            if not won:
                db.session.rollback()
                raise CampaignError(_refusal(campaign_id, now))
            plain, row = _new_code_row(campaign, "api", key)
            db.session.add(row)
            audit.record(
                "campaign.code_issued", "campaign_code", row.id, campaign_id=campaign_id, idempotency_key=key
            )
            db.session.commit()
        except IntegrityError:  # the same key issued by a concurrent call: theirs stands
            db.session.rollback()
            again = _code_by_key(campaign_id, key)
            if again is None:
                raise
            return IssuedCode(reveal_code(again), again, False)
        except CampaignError:
            raise
        except BaseException:
            db.session.rollback()
            raise
    return IssuedCode(plain, row, True)


# ---------------------------------------------------------------- voiding


def void_code(code_id: int, reason: str = "") -> bool:
    """Void one unclaimed code: it can no longer be claimed. A claimed code is refunded as an order."""
    with immediate_transaction(db.session()):
        done = rows_changed(
            update(CampaignCode)
            .where(CampaignCode.id == code_id, CampaignCode.status == "issued")
            .values(status="void", voided_at=utcnow())
        )
        if done:
            audit.record("campaign.code_voided", "campaign_code", code_id, reason=reason.strip() or None)
        db.session.commit()
    return bool(done)


def void_campaign(campaign_id: int, reason: str = "") -> int:
    """Void a campaign and every code of it not yet claimed; return how many codes were voided."""
    now = utcnow()
    with immediate_transaction(db.session()):
        done = rows_changed(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == "active")
            .values(status="void", voided_at=now, void_reason=reason.strip())
        )
        if not done:
            db.session.commit()
            return 0
        codes = rows_changed(
            update(CampaignCode)
            .where(CampaignCode.campaign_id == campaign_id, CampaignCode.status == "issued")
            .values(status="void", voided_at=now)
        )
        audit.record("campaign.voided", "campaign", campaign_id, reason=reason.strip() or None, codes=codes)
        db.session.commit()
    return int(codes)


def codes_page(campaign_id: int, limit: int = 50) -> list[CampaignCode]:
    """The latest codes of a campaign, masked (a page never shows a code in full)."""
    return list(
        db.session.scalars(
            select(CampaignCode)
            .where(CampaignCode.campaign_id == campaign_id)
            .order_by(CampaignCode.id.desc())
            .limit(limit)
        )
    )


def describe(campaign: Campaign) -> dict[str, Any]:
    """The campaign as the API shows it."""
    return {
        "id": str(campaign.id),
        "name": campaign.name,
        "status": campaign.status,
        "units": campaign.units,
        "issued": campaign.issued_count,
        "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at,
    }
