"""Claiming a code (兑换): verify who claims, refuse what must be refused, deliver exactly once.

A claim takes the code with one conditional UPDATE (`issued → claimed`): of five claims of one code at
the same moment exactly one wins. The winner then creates the code's order through `orders.services`
(the partner's channel `partner:<name>`, external id `code-<code id>`, paid, at the partner price), which
fulfils it like any order; the order is unique per (channel, external id), so a repeat can never deliver
twice. Should the process die between the two steps, the same claimant claiming again completes the order.

Every refused claim is counted (a `campaign_claim_attempts` row; a used code's `refused_claims`). Unknown
codes are guesses: each one counts against the caller's address and phone in the rate limiter (after
`CAMPAIGN_GUESS_LIMIT` they are refused outright until the window ends) and, past the same number within
the window, a `code_guessing` risk flag is raised for the back office.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from limits import parse
from sqlalchemy import func, select, update

from campaigns.models import Campaign, CampaignCode, ClaimAttempt, ClaimVerification
from campaigns.services import code_hash, get_campaign, rows_changed
from catalog import keyring
from orders import services as order_services
from orders.models import Order
from orders.risk import rules as risk_rules
from saas.extensions import db, immediate_transaction
from saas.phones import PhoneInvalid, normalise_phone
from saas.security import RejectionLimit
from saas.timeutil import utcnow
from tenants import audit
from tenants.outbox import queue_mail, queue_sms
from tenants.scoping import current_tenant_id

CLAIM_ACTOR = "customer (campaign claim)"
VERIFY_MINUTES = 10
VERIFY_ATTEMPTS = 5
RESEND_SECONDS = 60

guess_limit = RejectionLimit("CAMPAIGN_GUESS_LIMIT", "campaign-code-guess")


class ClaimantInvalid(ValueError):
    """Neither a phone number nor an email address."""


class VerificationRefused(ValueError):
    """A one-time code that is wrong, expired, used up or sent too recently (the message says which)."""


# ---------------------------------------------------------------- who claims


def normalise_claimant(value: str) -> str:
    """Return an email in lower case or a phone in E.164; ClaimantInvalid otherwise."""
    text = value.strip()
    if "@" in text:
        local, _at, domain = text.rpartition("@")
        if not local or "." not in domain or len(text) > 254 or " " in text:
            raise ClaimantInvalid(_("Enter a mobile number or an email address."))
        return text.lower()
    try:
        return normalise_phone(text)
    except PhoneInvalid as error:
        raise ClaimantInvalid(_("Enter a mobile number or an email address.")) from error


def is_email(claimant: str) -> bool:
    """Tell an email claimant from a phone one."""
    return "@" in claimant


def _verification_hash(row_id: int, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"campaign-claim:{row_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _latest_verification(claimant: str) -> ClaimVerification | None:
    return db.session.scalar(
        select(ClaimVerification)
        .where(ClaimVerification.claimant == claimant)
        .order_by(ClaimVerification.created_at.desc(), ClaimVerification.id.desc())
        .limit(1)
    )


def send_verification(claimant: str, shop_name: str) -> None:
    """Send a six-digit code to the claimant by SMS (a phone) or mail (an email); one a minute."""
    now = utcnow()
    latest = _latest_verification(claimant)
    if (
        latest is not None
        and latest.used_at is None
        and (now - latest.created_at).total_seconds() < RESEND_SECONDS
    ):
        raise VerificationRefused(_("A code was sent less than a minute ago."))
    code = f"{secrets.randbelow(10**6):06d}"
    row = ClaimVerification(
        claimant=claimant,
        code_hash="",
        created_at=now,
        expires_at=now + dt.timedelta(minutes=VERIFY_MINUTES),
    )
    row.code_hash = _verification_hash(row.id, code)
    db.session.add(row)
    db.session.flush()
    if is_email(claimant):
        subject = _("%(shop)s: your verification code", shop=shop_name)
        text = _(
            "Your code is %(code)s, valid %(minutes)s minutes. Do not share it.",
            code=code,
            minutes=VERIFY_MINUTES,
        )
        queue_mail(claimant, subject, text, kind="verification_code", about=("campaign_claim", row.id))
    else:
        queue_sms(
            claimant,
            "verification_code",
            {"code": code, "minutes": str(VERIFY_MINUTES)},
            about=("campaign_claim", row.id),
        )


def check_verification(claimant: str, code: str) -> None:
    """Accept the claimant's latest one-time code once; VerificationRefused otherwise."""
    with immediate_transaction(db.session()):
        row = _latest_verification(claimant)
        now = utcnow()
        if row is None or row.used_at is not None:
            db.session.commit()
            raise VerificationRefused(_("Ask for a code first."))
        if row.expires_at <= now or row.attempts >= VERIFY_ATTEMPTS:
            db.session.commit()
            raise VerificationRefused(_("This code has expired: ask for a new one."))
        row.attempts += 1
        if not hmac.compare_digest(row.code_hash, _verification_hash(row.id, code.strip())):
            db.session.commit()
            raise VerificationRefused(_("The code is not right."))
        row.used_at = now
        db.session.commit()


# ---------------------------------------------------------------- claiming


@dataclass
class ClaimResult:
    """What a claim did: `claimed` with its order, or the reason it was refused (CLAIM_OUTCOMES)."""

    outcome: str
    order: Order | None = None
    retry_after: int | None = None

    @property
    def claimed(self) -> bool:
        return self.outcome == "claimed"


def refusal_message(result: ClaimResult) -> str:
    """What the claimant reads when a claim is refused."""
    messages = {
        "unknown_code": _("This code is not valid. Check it and try again."),
        "already_claimed": _("This code has been claimed already."),
        "void": _("This code is no longer valid."),
        "expired": _("This code has expired."),
        "not_started": _("This campaign has not started yet."),
        "limit_reached": _("You have claimed as many codes of this campaign as it allows."),
        "rate_limited": _(
            "Too many invalid codes: try again in %(seconds)s seconds.", seconds=result.retry_after or 60
        ),
    }
    return messages.get(result.outcome, _("This code cannot be claimed."))


def _callers(claimant: str, ip: str | None) -> list[str]:
    return [f"claimant:{current_tenant_id()}:{claimant}"] + ([f"ip:{ip}"] if ip else [])


def _record_attempt(
    outcome: str, claimant: str, ip: str | None, via: str, code: CampaignCode | None = None
) -> None:
    db.session.add(
        ClaimAttempt(
            campaign_id=code.campaign_id if code else None,
            code_id=code.id if code else None,
            outcome=outcome,
            claimant=claimant,
            ip=(ip or "")[:45] or None,
            via=via,
            at=utcnow(),
        )
    )


def _refuse(
    outcome: str, claimant: str, ip: str | None, via: str, code: CampaignCode | None = None
) -> ClaimResult:
    """Count a refused claim (and a used code's refusals) and commit."""
    _record_attempt(outcome, claimant, ip, via, code)
    if code is not None and outcome == "already_claimed":
        db.session.execute(
            update(CampaignCode)
            .where(CampaignCode.id == code.id)
            .values(refused_claims=CampaignCode.refused_claims + 1)
        )
    db.session.commit()
    return ClaimResult(outcome)


def _guess_window() -> dt.timedelta:
    item = parse(str(current_app.config["CAMPAIGN_GUESS_LIMIT"]))
    return dt.timedelta(seconds=item.get_expiry())


def _note_guess(claimant: str, ip: str | None, via: str) -> ClaimResult:
    """Refuse an unknown code: count it, rate-limit the caller, flag the address or phone when it persists."""
    _record_attempt("unknown_code", claimant, ip, via)
    limit = parse(str(current_app.config["CAMPAIGN_GUESS_LIMIT"])).amount
    since = utcnow() - _guess_window()
    flags = []
    for column, value in ((ClaimAttempt.ip, ip), (ClaimAttempt.claimant, claimant)):
        if not value:
            continue
        guesses = (
            db.session.scalar(
                select(func.count()).where(
                    ClaimAttempt.outcome == "unknown_code", column == value, ClaimAttempt.at > since
                )
            )
            or 0
        )
        if guesses >= limit:
            bucket = int(utcnow().timestamp() // max(60, _guess_window().total_seconds()))
            what = "ip" if column is ClaimAttempt.ip else "claimant"
            flag = risk_rules.raise_flag(
                "code_guessing",
                f"code_guessing:{what}:{value}:{bucket}",
                _("%(n)s invalid campaign codes tried from %(who)s.", n=guesses, who=value),
                ip=(ip or "")[:45] or None,
            )
            if flag is not None:
                audit.record(
                    "campaign.guessing_flagged",
                    "risk_flag",
                    flag.id,
                    actor=CLAIM_ACTOR,
                    who=value,
                    guesses=guesses,
                )
                flags.append(risk_rules.flag_payload(flag))
    db.session.commit()
    risk_rules.announce(current_tenant_id(), flags)
    return ClaimResult("unknown_code")


def _claims_of(campaign_id: int, claimant: str) -> int:
    return (
        db.session.scalar(
            select(func.count()).where(
                CampaignCode.campaign_id == campaign_id,
                CampaignCode.claimant == claimant,
                CampaignCode.status == "claimed",
            )
        )
        or 0
    )


def claim(code_text: str, claimant: str, *, ip: str | None = None, via: str = "page") -> ClaimResult:
    """Claim a code for a verified claimant (E.164 phone or lower-case email); deliver its rights once."""
    if not keyring.has_tenant_keys():
        keyring.ensure_tenant_keys()
    with immediate_transaction(db.session()):  # every path below writes (a claim, or a counted refusal)
        try:
            taken = _take(code_text, claimant, ip, via)
        except BaseException:
            db.session.rollback()
            raise
    if isinstance(taken, ClaimResult):
        if taken.outcome == "unknown_code":
            for caller in _callers(claimant, ip):
                guess_limit.count_rejection(caller)
        return taken
    code, campaign = taken
    return _complete(code, campaign, claimant, ip)


def _take(
    code_text: str, claimant: str, ip: str | None, via: str
) -> ClaimResult | tuple[CampaignCode, Campaign]:
    """Take the code for the claimant (committed), or refuse and count the claim (committed)."""
    for caller in _callers(claimant, ip):
        wait = guess_limit.retry_after(caller)
        if wait is not None:
            _record_attempt("rate_limited", claimant, ip, via)
            db.session.commit()
            return ClaimResult("rate_limited", retry_after=wait)
    code = db.session.scalar(select(CampaignCode).where(CampaignCode.code_hash == code_hash(code_text)))
    if code is None:
        return _note_guess(claimant, ip, via)
    campaign = get_campaign(code.campaign_id)
    assert campaign is not None
    now = utcnow()
    if code.status == "claimed":
        if code.claimant == claimant and code.order_id is None:
            db.session.commit()
            return code, campaign  # a claim that died before its order: finish it
        return _refuse("already_claimed", claimant, ip, via, code)
    if code.status == "void" or campaign.status == "void":
        return _refuse("void", claimant, ip, via, code)
    if now >= campaign.ends_at:
        return _refuse("expired", claimant, ip, via, code)
    if now < campaign.starts_at:
        return _refuse("not_started", claimant, ip, via, code)
    # The campaign row is locked so that one claimant's claims of several codes count one by one.
    db.session.execute(select(Campaign.id).where(Campaign.id == campaign.id).with_for_update())
    if _claims_of(campaign.id, claimant) >= campaign.claims_per_customer:
        return _refuse("limit_reached", claimant, ip, via, code)
    won = rows_changed(
        update(CampaignCode)
        .where(CampaignCode.id == code.id, CampaignCode.status == "issued")
        .values(status="claimed", claimant=claimant, claimed_at=now, claim_ip=(ip or "")[:45] or None)
    )
    if not won:  # taken by a concurrent claim since we read it (PostgreSQL; SQLite serialises writers)
        fresh = db.session.get(CampaignCode, (current_tenant_id(), code.id), populate_existing=True)
        outcome = "void" if fresh is not None and fresh.status == "void" else "already_claimed"
        return _refuse(outcome, claimant, ip, via, fresh)
    _record_attempt("claimed", claimant, ip, via, code)
    audit.record(
        "campaign.code_claimed", "campaign_code", code.id, actor=CLAIM_ACTOR, campaign_id=campaign.id, via=via
    )
    db.session.commit()
    return code, campaign


def _complete(code: CampaignCode, campaign: Campaign, claimant: str, ip: str | None) -> ClaimResult:
    """Create (or find) the code's paid order, fulfilled like any order, and link it to the code."""
    customer = order_services.CustomerInfo(
        email=claimant if is_email(claimant) else None, phone=None if is_email(claimant) else claimant
    )
    outcome = order_services.create_order(
        order_services.OrderRequest(
            channel=campaign.channel,
            external_id=f"code-{code.id}",
            source="campaign",
            customer=customer,
            lines=[order_services.LineRequest(campaign.plan_id, 1, unit_price=campaign.partner_price)],
            note=campaign.name,
            paid=True,
            payment_reference=f"campaign {campaign.id}",
            actor=CLAIM_ACTOR,
            client_ip=ip,
        )
    )
    order = outcome.order
    with immediate_transaction(db.session()):
        db.session.execute(update(CampaignCode).where(CampaignCode.id == code.id).values(order_id=order.id))
        db.session.commit()
    return ClaimResult("claimed", order)
