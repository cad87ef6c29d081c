"""Back-office forms of integrations (amounts and percentages are text, parsed with Decimal)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    DateField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from integrations.models import SPEND_CATEGORIES
from saas.labels import LABELS

REF_KIND_CHOICES = [
    ("sku", _l("SKU")),
    ("variant", _l("Variant id")),
    ("price", _l("Price id (Stripe)")),
    ("product", _l("Product id")),
]
STATUS_CHOICES = [("active", _l("Active")), ("paused", _l("Paused (deliveries are refused with 503)"))]
CATEGORY_LABELS = LABELS["spend_category"]


class NewChannelForm(FlaskForm):
    kind = SelectField(_l("Platform"), choices=[])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    currency = StringField(_l("Currency"), default="CNY", validators=[DataRequired(), Length(min=3, max=3)])
    secret = StringField(
        _l("Signing secret from the platform (blank: generate one)"),
        validators=[Optional(), Length(min=8, max=200)],
    )


class ChannelSettingsForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    currency = StringField(_l("Currency"), validators=[DataRequired(), Length(min=3, max=3)])
    fee_percent = StringField(_l("Fee, percent of each order"), default="0")
    fee_fixed = StringField(_l("Fee, fixed per order"), default="0")
    price_tolerance = StringField(_l("Price tolerance, percent"), default="1")
    status = SelectField(_l("Status"), choices=STATUS_CHOICES)


class SecretForm(FlaskForm):
    secret = StringField(
        _l("New secret from the platform"), validators=[DataRequired(), Length(min=8, max=200)]
    )
    overlap_hours = IntegerField(
        _l("Keep accepting the old secret for (hours)"),
        default=24,
        validators=[Optional(), NumberRange(min=0, max=336)],
    )


class CredentialsForm(FlaskForm):
    """A payment platform's credentials (write-only); the template shows the fields of the channel's kind."""

    mch_id = StringField(_l("Merchant id (mch_id)"), validators=[Optional(), Length(max=32)])
    app_id = StringField(_l("AppID / APPID"), validators=[Optional(), Length(max=64)])
    api_v3_key = PasswordField(_l("APIv3 key (32 characters)"), validators=[Optional(), Length(max=64)])
    platform_public_key_id = StringField(
        _l("WeChat Pay public key id (PUB_KEY_ID_…)"), validators=[Optional(), Length(max=64)]
    )
    platform_public_key = TextAreaField(
        _l("WeChat Pay public key (PEM)"), validators=[Optional(), Length(max=8000)]
    )
    certificate_serial = StringField(
        _l("Platform certificate serial (while migrating)"), validators=[Optional(), Length(max=64)]
    )
    certificate_pem = TextAreaField(
        _l("Platform certificate (PEM)"), validators=[Optional(), Length(max=8000)]
    )
    alipay_public_key = TextAreaField(
        _l("Alipay public key (not your application's)"), validators=[Optional(), Length(max=8000)]
    )
    client_id = StringField(_l("client_id"), validators=[Optional(), Length(max=64)])
    client_secret = PasswordField(_l("client_secret"), validators=[Optional(), Length(max=128)])
    kdt_id = StringField(_l("Shop id (kdt_id)"), validators=[Optional(), Length(max=40)])
    overlap_hours = IntegerField(
        _l("Keep accepting the old credentials for (hours)"),
        default=24,
        validators=[Optional(), NumberRange(min=0, max=336)],
    )

    def credentials(self, fields: tuple[str, ...]) -> dict[str, object]:
        """Return the credentials object of a kind with these `fields`, from what was typed."""
        found: dict[str, object] = {
            name: (getattr(self, name).data or "").strip()
            for name in fields
            if name != "platform_certificates" and (getattr(self, name).data or "").strip()
        }
        if "platform_certificates" in fields and (self.certificate_serial.data or "").strip():
            found["platform_certificates"] = [
                {
                    "serial": self.certificate_serial.data.strip(),
                    "pem": (self.certificate_pem.data or "").strip(),
                }
            ]
        return found


class RotateForm(FlaskForm):
    overlap_hours = IntegerField(
        _l("Keep accepting the old secret for (hours)"),
        default=24,
        validators=[Optional(), NumberRange(min=0, max=336)],
    )


class MappingForm(FlaskForm):
    ref_kind = SelectField(_l("Kind"), choices=REF_KIND_CHOICES)
    external_ref = StringField(_l("External SKU / id"), validators=[DataRequired(), Length(max=200)])
    plan_id = SelectField(_l("Plan"), coerce=int, choices=[], validate_choice=False)


class UploadForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired()])


class SpendForm(FlaskForm):
    channel_id = SelectField(_l("Channel"), coerce=int, choices=[], validate_choice=False)
    day = DateField(_l("Day"), validators=[DataRequired()])
    amount = StringField(_l("Amount"), validators=[DataRequired()])
    currency = StringField(_l("Currency"), default="CNY", validators=[DataRequired(), Length(min=3, max=3)])
    category = SelectField(_l("Category"), choices=[(c, CATEGORY_LABELS[c]) for c in SPEND_CATEGORIES])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=2000)])


class SpendUploadForm(FlaskForm):
    channel_id = SelectField(
        _l("Channel (when the file has no channel column)"), coerce=int, choices=[], validate_choice=False
    )
    file = FileField(_l("CSV file"), validators=[FileRequired()])


class EndpointForm(FlaskForm):
    url = StringField(_l("URL"), validators=[DataRequired(), Length(max=2000)])
    description = StringField(_l("Description"), validators=[Optional(), Length(max=200)])
    event_types = SelectMultipleField(_l("Events"), choices=[], validate_choice=False)
