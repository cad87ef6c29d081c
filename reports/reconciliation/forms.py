"""Forms of the reconciliation pages: a new run, a settlement upload, its column mapping, a resolution."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

FORMAT_CHOICES = [("csv", "CSV"), ("xlsx", "XLSX"), ("pdf", "PDF")]
ENCODING_CHOICES = [
    ("", _l("detect")),
    ("utf-8", "UTF-8"),
    ("utf-8-sig", _l("UTF-8 with BOM")),
    ("gb18030", "GBK / GB18030"),
]


class RunForm(FlaskForm):
    period_kind = RadioField(
        _l("Period"), choices=[("month", _l("A month")), ("range", _l("From … to"))], default="month"
    )
    month = StringField(_l("Month (YYYY-MM)"), validators=[Optional(), Length(max=7)])
    starts_on = DateField(_l("First day"), validators=[Optional()])
    ends_on = DateField(_l("Last day"), validators=[Optional()])
    channel = StringField(_l("Channel (empty: all channels)"), validators=[Optional(), Length(max=64)])
    formats = SelectMultipleField(_l("Files"), choices=FORMAT_CHOICES, default=["csv", "xlsx", "pdf"])


class SettlementUploadForm(FlaskForm):
    file = FileField(_l("Settlement or payout file (CSV)"), validators=[FileRequired()])
    channel = StringField(
        _l("Channel of the file (empty: the run's)"), validators=[Optional(), Length(max=64)]
    )
    encoding = SelectField(_l("Encoding"), choices=ENCODING_CHOICES, default="")


class MappingForm(FlaskForm):
    has_header = BooleanField(_l("The first row names the columns"))
    order_id = SelectField(_l("Order id column"), coerce=str)
    amount = SelectField(_l("Amount column"), coerce=str)
    fee = SelectField(_l("Fee column"), coerce=str)
    date = SelectField(_l("Date column"), coerce=str)


class ResolveForm(FlaskForm):
    note = TextAreaField(_l("How was it resolved?"), validators=[DataRequired(), Length(max=2000)])
