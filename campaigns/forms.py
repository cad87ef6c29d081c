"""Forms of partner campaigns: the back office's and the claimant's."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from campaigns.models import BILLING_BASES, ISSUE_MODES, PARTNER_KINDS
from saas.labels import LABELS
from saas.validators import EmailAddress


class PartnerForm(FlaskForm):
    """Add a partner: an enterprise, bank or carrier, and its contact."""

    name = StringField(_l("Partner name"), validators=[DataRequired(), Length(max=120)])
    kind = SelectField(_l("Kind"), choices=[(k, LABELS["partner_kind"][k]) for k in PARTNER_KINDS])
    contact_name = StringField(_l("Contact name"), validators=[Optional(), Length(max=120)])
    contact_email = StringField(_l("Contact email"), validators=[Optional(), EmailAddress(), Length(max=254)])
    contact_phone = StringField(_l("Contact phone"), validators=[Optional(), Length(max=32)])


class CampaignForm(FlaskForm):
    """Create a campaign: which partner, which plan, how many codes, when, at what price."""

    name = StringField(_l("Campaign name"), validators=[DataRequired(), Length(max=120)])
    partner_id = SelectField(_l("Partner"), coerce=int, validators=[DataRequired()])
    plan_id = SelectField(_l("Plan"), coerce=int, validators=[DataRequired()])
    units = IntegerField(_l("Number of codes"), validators=[DataRequired(), NumberRange(1, 100_000)])
    partner_price = StringField(_l("Partner price per code"), validators=[DataRequired(), Length(max=20)])
    starts_on = DateField(_l("Claimable from"), validators=[DataRequired()])
    ends_on = DateField(_l("Claimable until (inclusive)"), validators=[DataRequired()])
    claims_per_customer = IntegerField(
        _l("Codes one customer may claim"), default=1, validators=[DataRequired(), NumberRange(1, 1000)]
    )
    billing_basis = SelectField(
        _l("Billing basis"), choices=[(k, LABELS["billing_basis"][k]) for k in BILLING_BASES]
    )
    issue_mode = SelectField(
        _l("How codes are issued"), choices=[(k, LABELS["issue_mode"][k]) for k in ISSUE_MODES]
    )


class ExportForm(FlaskForm):
    """Export a campaign's codes, once, as CSV or XLSX."""

    file_format = SelectField(_l("File format"), choices=[("csv", "CSV"), ("xlsx", "XLSX")])


class VoidForm(FlaskForm):
    """Void a code or a campaign, with a reason."""

    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=2000)])


class StatementForm(FlaskForm):
    """The period of a partner's statement (the tenant's days, inclusive)."""

    class Meta:
        csrf = False  # a GET form: it reads, never writes

    start = DateField(_l("From"), validators=[DataRequired()])
    end = DateField(_l("To (inclusive)"), validators=[DataRequired()])


class ContactForm(FlaskForm):
    """The claimant's phone or email, to which a one-time code is sent."""

    contact = StringField(_l("Mobile number or email"), validators=[DataRequired(), Length(max=254)])


class ClaimForm(FlaskForm):
    """Claim a code: the code, the contact, and the one-time code sent to it."""

    code = StringField(_l("Redemption code"), validators=[DataRequired(), Length(max=64)])
    contact = StringField(_l("Mobile number or email"), validators=[DataRequired(), Length(max=254)])
    verification = StringField(_l("Verification code"), validators=[DataRequired(), Length(max=12)])
