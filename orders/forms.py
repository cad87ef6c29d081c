"""Back-office forms of the orders package."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from saas.validators import EmailAddress


class ManualOrderForm(FlaskForm):
    """Enter an order by hand (补单: a backfill for a payment the channel lost)."""

    customer_email = StringField(
        _l("Customer email"), validators=[Optional(), EmailAddress(), Length(max=254)]
    )
    customer_phone = StringField(_l("Customer phone"), validators=[Optional(), Length(max=32)])
    customer_name = StringField(_l("Customer name"), validators=[Optional(), Length(max=120)])
    plan_id = SelectField(_l("Plan"), coerce=int, validators=[DataRequired()])
    quantity = IntegerField(_l("Quantity"), default=1, validators=[DataRequired(), NumberRange(1, 1000)])
    unit_price = StringField(_l("Price per unit (blank: the plan's price)"), validators=[Optional()])
    channel = StringField(_l("Channel"), default="manual", validators=[DataRequired(), Length(max=64)])
    external_id = StringField(
        _l("Order number on the channel (blank: a new one)"), validators=[Optional(), Length(max=128)]
    )
    paid = BooleanField(_l("Paid: fulfil it now"), default=True)
    payment_reference = StringField(_l("Payment reference"), validators=[Optional(), Length(max=128)])
    client_ip = StringField(_l("Buyer's IP address (risk control)"), validators=[Optional(), Length(max=45)])
    device_id = StringField(_l("Buyer's device id (risk control)"), validators=[Optional(), Length(max=128)])
    note = TextAreaField(_l("Why is it entered by hand?"), validators=[DataRequired(), Length(max=2000)])


class ReasonForm(FlaskForm):
    """An action that needs a reason (cancel, resend)."""

    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=2000)])


class RefundForm(FlaskForm):
    """Refund the order, one line or one grant; the amount defaults to what they cost."""

    line_id = IntegerField(validators=[Optional()])
    grant_id = IntegerField(validators=[Optional()])
    amount = StringField(_l("Amount (blank: the full share)"), validators=[Optional()])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=2000)])


class CustomerForm(FlaskForm):
    """Edit a customer's contact details and notes."""

    name = StringField(_l("Name"), validators=[Optional(), Length(max=120)])
    email = StringField(_l("Email"), validators=[Optional(), EmailAddress(), Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=32)])
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=5000)])


class MergeForm(FlaskForm):
    """Merge another customer record into this one."""

    other_id = StringField(
        _l("Customer id to merge into this one"), validators=[DataRequired(), Length(max=24)]
    )
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=500)])


class UploadForm(FlaskForm):
    """Upload a CSV file (orders, or a supplier's report of used codes)."""

    file = FileField(_l("CSV file"))
    supplier = StringField(_l("Supplier"), validators=[Optional(), Length(max=120)])
    paid = BooleanField(_l("The orders are paid: fulfil them"), default=True)


class FilterForm(FlaskForm):
    """The orders list filters (GET, no CSRF)."""

    class Meta:
        csrf = False

    q = StringField(_l("Search"))
    status = SelectField(_l("Status"), choices=[], validate_choice=False)
    channel = StringField(_l("Channel"))
