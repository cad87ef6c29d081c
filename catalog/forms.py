"""Catalog forms: rights, bundles, plans, imports, voids (amounts are text, parsed with Decimal)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from catalog.fileformats import DELIMITER_LABELS, ENCODINGS

KIND_CHOICES = [
    ("card_key", _l("Card key from inventory")),
    ("code", _l("Generated code")),
    ("topup", _l("Direct top-up (直充)")),
    ("link", _l("Link")),
]
PERIOD_CHOICES = [
    ("month", _l("Month")),
    ("quarter", _l("Quarter")),
    ("year", _l("Year")),
    ("days", _l("Number of days")),
]
ACCOUNT_CHOICES = [
    ("mobile", _l("Mobile number")),
    ("qq", _l("QQ number")),
    ("email", _l("Email")),
    ("account", _l("Account name")),
]


class RightForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    provider = StringField(_l("Provider / brand"), validators=[Optional(), Length(max=120)])
    description = TextAreaField(_l("Description"), validators=[Optional()])
    kind = SelectField(_l("Fulfilment"), choices=KIND_CHOICES)
    face_value = StringField(_l("Face value"), default="0")
    unit_cost = StringField(_l("Default unit cost"), default="0")
    currency = StringField(_l("Currency"), default="CNY", validators=[DataRequired(), Length(min=3, max=3)])
    validity_days = IntegerField(
        _l("Validity (days)"), validators=[Optional(), NumberRange(min=1, max=36500)]
    )
    reusable = BooleanField(_l("Reusable key (shared account, sold several times)"))
    max_deliveries = IntegerField(
        _l("Deliveries per key"), default=1, validators=[Optional(), NumberRange(min=1)]
    )
    code_prefix = StringField(_l("Code prefix"), validators=[Optional(), Length(max=12)])
    code_length = IntegerField(
        _l("Code length"), default=12, validators=[Optional(), NumberRange(min=6, max=32)]
    )
    topup_adapter = StringField(_l("Top-up supplier adapter"), validators=[Optional(), Length(max=60)])
    topup_product_code = StringField(_l("Supplier product code"), validators=[Optional(), Length(max=120)])
    topup_account_type = SelectField(_l("Account to top up"), choices=ACCOUNT_CHOICES)
    link_url = StringField(_l("Link"), validators=[Optional(), Length(max=2000)])


class ThresholdForm(FlaskForm):
    threshold = IntegerField(_l("Alert below"), validators=[Optional(), NumberRange(min=0)])


class BundleForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    description = TextAreaField(_l("Description"), validators=[Optional()])
    cover_text = StringField(_l("Cover text"), validators=[Optional(), Length(max=200)])


class BundleItemForm(FlaskForm):
    right_id = SelectField(_l("Right"), choices=[], validate_choice=False)
    quantity = IntegerField(
        _l("Quantity"), default=1, validators=[DataRequired(), NumberRange(min=1, max=1000)]
    )


class PlanForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    period_unit = SelectField(_l("Period"), choices=PERIOD_CHOICES)
    period_days = IntegerField(_l("Days (for a number of days)"), validators=[Optional(), NumberRange(min=1)])
    price = StringField(_l("Price"), validators=[DataRequired()])
    list_price = StringField(_l("List price (划线价)"), validators=[Optional()])
    currency = StringField(_l("Currency"), default="CNY", validators=[DataRequired(), Length(min=3, max=3)])
    renewable = BooleanField(_l("Renewable"), default=True)
    purchase_limit = IntegerField(
        _l("Purchases per customer per period"), validators=[Optional(), NumberRange(min=1)]
    )
    family_sharing = BooleanField(_l("Family sharing (亲情共享)"), default=False)
    family_max_members = IntegerField(
        _l("Family members at most"), default=3, validators=[Optional(), NumberRange(min=1, max=10)]
    )
    position = IntegerField(_l("Position"), default=0, validators=[Optional()])


class UploadForm(FlaskForm):
    right_id = SelectField(_l("Right"), choices=[], validate_choice=False)
    supplier = StringField(_l("Supplier"), validators=[DataRequired(), Length(max=120)])
    unit_cost = StringField(_l("Unit cost"), validators=[DataRequired()])
    currency = StringField(_l("Currency"), validators=[Optional(), Length(min=3, max=3)])
    expires_on = StringField(_l("Expiry date of the batch (YYYY-MM-DD, optional)"), validators=[Optional()])
    file = FileField(_l("File (TXT, CSV, TSV or XLSX)"), validators=[FileRequired()])


class ImportOptionsForm(FlaskForm):
    encoding = SelectField(_l("Encoding"), choices=[("", _l("detect"))] + [(e, e) for e in ENCODINGS])
    delimiter = SelectField(
        _l("Separator"),
        choices=[("auto", _l("detect"))]
        + [("line" if value == "" else value, label) for value, label in DELIMITER_LABELS.items()],
    )
    has_header = SelectField(
        _l("Header row"), choices=[("auto", _l("detect")), ("yes", _l("yes")), ("no", _l("no"))]
    )
    sheet = StringField(_l("Sheet"), validators=[Optional()])
    card_column = SelectField(_l("Card number column"), choices=[], validate_choice=False)
    secret_column = SelectField(_l("Secret column"), choices=[], validate_choice=False)
    expires_column = SelectField(_l("Expiry column"), choices=[], validate_choice=False)
    on_reject = SelectField(
        _l("When a row is rejected"),
        choices=[
            ("skip", _l("skip rejected rows (they are listed in the report)")),
            ("abort", _l("abort: import nothing")),
        ],
    )


class VoidForm(FlaskForm):
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class VoidFilterForm(FlaskForm):
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])
    right_id = StringField(_l("Right"), validators=[Optional()])
    batch_id = StringField(_l("Batch"), validators=[Optional()])
    expires_before = StringField(_l("Expiring before (YYYY-MM-DD)"), validators=[Optional()])
