"""Back-office pages of partner campaigns: list and figures, create, export once, void, statements."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from campaigns import figures, services
from campaigns.forms import CampaignForm, ExportForm, PartnerForm, StatementForm, VoidForm
from campaigns.models import Campaign, CampaignCode, Partner
from catalog.models import Bundle, Plan
from saas import money
from saas.csvfile import BOM, SafeCsvWriter
from saas.extensions import db
from saas.labels import label
from saas.timeutil import utcnow
from tenants import audit, roles
from tenants.context import current_tenant, requires

bp = Blueprint("campaigns", __name__, url_prefix="/t/<tenant_slug>/campaigns")


def _campaign_or_404(campaign_id: int) -> Campaign:
    found = services.get_campaign(campaign_id)
    if found is None:
        abort(404)
    return found


def _code_or_404(campaign: Campaign, code_id: int) -> CampaignCode:
    found = services.get_code(code_id)
    if found is None or found.campaign_id != campaign.id:
        abort(404)
    return found


def _partner_or_404(partner_id: int) -> Partner:
    found = services.get_partner(partner_id)
    if found is None:
        abort(404)
    return found


@bp.route("/")
@login_required
@requires(roles.CAMPAIGNS_VIEW)
def campaigns() -> ResponseReturnValue:
    """List campaigns with their figures, and the partners with theirs."""
    found = services.campaigns_list()
    counts = figures.counts_by_campaign([c.id for c in found])
    partners = {p.id: p for p in services.partners()}
    return render_template(
        "campaigns/list.html",
        campaigns=found,
        counts=counts,
        partners=partners,
        partner_rows=figures.by_partner(found, counts),
        guesses=figures.guesses_total(),
        partner_form=PartnerForm(formdata=None),
        now=utcnow(),
    )


@bp.route("/partners", methods=["POST"])
@login_required
@requires(roles.CAMPAIGNS_MANAGE)
def add_partner() -> ResponseReturnValue:
    """Add a partner."""
    form = PartnerForm()
    if not form.validate():
        flash(_("Check the partner's fields."), "error")
        return redirect(url_for("campaigns.campaigns"))
    try:
        services.create_partner(
            form.name.data or "",
            form.kind.data or "",
            form.contact_name.data or "",
            form.contact_email.data or "",
            form.contact_phone.data or "",
        )
    except services.CampaignError as error:
        flash(str(error), "error")
    else:
        flash(_("Partner added."), "info")
    return redirect(url_for("campaigns.campaigns"))


def _plan_choices() -> list[tuple[int, str]]:
    rows = db.session.execute(
        select(Plan.id, Plan.name, Bundle.name)
        .join(Bundle, Bundle.id == Plan.bundle_id)
        .where(Bundle.status != "draft")
        .order_by(Bundle.name, Plan.position, Plan.id)
    )
    return [(plan_id, f"{bundle_name} · {plan_name}") for plan_id, plan_name, bundle_name in rows]


def _day_start(day: dt.date, zone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


@bp.route("/new", methods=["GET", "POST"])
@login_required
@requires(roles.CAMPAIGNS_MANAGE)
def new_campaign() -> ResponseReturnValue:
    """Create a campaign."""
    form = CampaignForm()
    form.partner_id.choices = [(p.id, p.name) for p in services.partners()]
    form.plan_id.choices = _plan_choices()
    tenant = current_tenant()
    if request.method == "POST" and form.validate():
        try:
            assert form.starts_on.data and form.ends_on.data
            campaign = services.create_campaign(
                services.CampaignRequest(
                    partner_id=form.partner_id.data,
                    name=form.name.data or "",
                    plan_id=form.plan_id.data,
                    units=form.units.data or 0,
                    partner_price=money.parse(form.partner_price.data or "", tenant.currency),
                    starts_at=_day_start(form.starts_on.data, tenant.time_zone),
                    ends_at=_day_start(form.ends_on.data + dt.timedelta(days=1), tenant.time_zone),
                    claims_per_customer=form.claims_per_customer.data or 1,
                    billing_basis=form.billing_basis.data or "",
                    issue_mode=form.issue_mode.data or "",
                )
            )
        except (services.CampaignError, money.MoneyError) as error:
            flash(str(error), "error")
        else:
            flash(_("Campaign created."), "info")
            return redirect(url_for("campaigns.campaign", campaign_id=campaign.id))
    return render_template("campaigns/new.html", form=form)


@bp.route("/<int:campaign_id>")
@login_required
@requires(roles.CAMPAIGNS_VIEW)
def campaign(campaign_id: int) -> ResponseReturnValue:
    """One campaign: its figures, per day, its latest codes (masked), export and void."""
    found = _campaign_or_404(campaign_id)
    return render_template(
        "campaigns/campaign.html",
        campaign=found,
        partner=services.get_partner(found.partner_id),
        counts=figures.counts_by_campaign([found.id])[found.id],
        days=figures.per_day(found.id, current_tenant().time_zone),
        codes=services.codes_page(found.id),
        expired=services.is_expired(found),
        export_form=ExportForm(formdata=None),
        void_form=VoidForm(formdata=None),
        claim_url=url_for("campaign_claim.page", shop=current_tenant().slug),
    )


def _codes_file(
    campaign: Campaign, partner: Partner, codes: list[str], file_format: str
) -> tuple[bytes, str]:
    header = [_("Redemption code"), _("Campaign"), _("Partner"), _("Claimable until")]
    until = (campaign.ends_at - dt.timedelta(seconds=1)).astimezone(ZoneInfo(current_tenant().time_zone))
    rows = [[code, campaign.name, partner.name, until.strftime("%Y-%m-%d")] for code in codes]
    if file_format == "xlsx":
        try:
            from openpyxl import Workbook  # optional: CSV when it is not installed
        except ImportError:
            file_format = "csv"
        else:
            book = Workbook(write_only=True)
            sheet = book.create_sheet(_("Codes"))
            sheet.append(header)
            for row in rows:
                sheet.append(row)
            out = io.BytesIO()
            book.save(out)
            return out.getvalue(), "xlsx"
    text = io.StringIO()
    text.write(BOM)
    writer = SafeCsvWriter(text)
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode("utf-8"), "csv"


MIME_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@bp.route("/<int:campaign_id>/export", methods=["POST"])
@login_required
@requires(roles.CAMPAIGNS_MANAGE)
def export(campaign_id: int) -> ResponseReturnValue:
    """Generate the campaign's codes and download them, once: they are never shown again in bulk."""
    found = _campaign_or_404(campaign_id)
    form = ExportForm()
    file_format = form.file_format.data if form.file_format.data in MIME_TYPES else "csv"
    try:
        codes = services.export_codes(found.id)
    except services.CampaignError as error:
        flash(str(error), "error")
        return redirect(url_for("campaigns.campaign", campaign_id=found.id))
    partner = services.get_partner(found.partner_id)
    assert partner is not None
    body, file_format = _codes_file(found, partner, codes, file_format)
    filename = f"campaign-{found.id}-codes.{file_format}"
    return Response(
        body,
        mimetype=MIME_TYPES[file_format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@bp.route("/<int:campaign_id>/void", methods=["POST"])
@login_required
@requires(roles.CAMPAIGNS_MANAGE)
def void(campaign_id: int) -> ResponseReturnValue:
    """Void the campaign and its unclaimed codes."""
    found = _campaign_or_404(campaign_id)
    form = VoidForm()
    if found.status == "void":
        flash(_("The campaign is void already."), "info")
    else:
        voided = services.void_campaign(found.id, form.reason.data or "")
        flash(_("Campaign voided: %(n)s unclaimed codes can no longer be claimed.", n=voided), "info")
    return redirect(url_for("campaigns.campaign", campaign_id=found.id))


@bp.route("/<int:campaign_id>/codes/<int:campaign_code_id>/void", methods=["POST"])
@login_required
@requires(roles.CAMPAIGNS_MANAGE)
def void_code(campaign_id: int, campaign_code_id: int) -> ResponseReturnValue:
    """Void one unclaimed code."""
    found = _campaign_or_404(campaign_id)
    code = _code_or_404(found, campaign_code_id)
    if services.void_code(code.id, VoidForm().reason.data or ""):
        flash(_("Code %(mask)s voided.", mask=code.mask), "info")
    else:
        flash(_("Only an unclaimed code can be voided; a claimed one is refunded as its order."), "error")
    return redirect(url_for("campaigns.campaign", campaign_id=found.id))


# ---------------------------------------------------------------- the partner's statement


def _period(form: StatementForm) -> tuple[dt.date, dt.date]:
    if form.validate() and form.start.data and form.end.data and form.start.data <= form.end.data:
        return form.start.data, form.end.data
    today = utcnow().astimezone(ZoneInfo(current_tenant().time_zone)).date()
    return today.replace(day=1), today


@bp.route("/partners/<int:partner_id>/statement")
@login_required
@requires(roles.CAMPAIGNS_VIEW)
def statement(partner_id: int) -> ResponseReturnValue:
    """The partner's statement for a period: billable codes × partner price, per campaign."""
    partner = _partner_or_404(partner_id)
    form = StatementForm(request.args)
    start, end = _period(form)
    form.start.data, form.end.data = start, end
    return render_template(
        "campaigns/statement.html",
        statement=figures.statement(partner, start, end, current_tenant().time_zone),
        form=form,
    )


@bp.route("/partners/<int:partner_id>/statement.csv")
@login_required
@requires(roles.REPORTS_EXPORT)
def statement_csv(partner_id: int) -> ResponseReturnValue:
    """The partner's statement as CSV (audited, like every export)."""
    partner = _partner_or_404(partner_id)
    start, end = _period(StatementForm(request.args))
    found = figures.statement(partner, start, end, current_tenant().time_zone)
    text = io.StringIO()
    text.write(BOM)
    writer = SafeCsvWriter(text)
    writer.writerow(
        [
            _("Partner"),
            _("Campaign"),
            _("Billing basis"),
            _("Billable codes"),
            _("Partner price"),
            _("Amount"),
            _("Currency"),
        ]
    )
    for line in found.lines:
        writer.writerow(
            [
                partner.name,
                line.campaign.name,
                label("billing_basis", line.campaign.billing_basis),
                line.billable,
                str(money.to_decimal(line.campaign.partner_price, line.campaign.currency)),
                str(money.to_decimal(line.amount, line.campaign.currency)),
                line.campaign.currency,
            ]
        )
    for currency, total in found.totals().items():
        writer.writerow(
            [partner.name, _("Total"), "", "", "", str(money.to_decimal(total, currency)), currency]
        )
    audit.record(
        "campaign.statement_exported", "campaign_partner", partner.id, start=str(start), end=str(end)
    )
    db.session.commit()
    filename = f"statement-{partner.id}-{start}-{end}.csv"
    return Response(
        text.getvalue().encode("utf-8"),
        mimetype=MIME_TYPES["csv"],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
