"""Forms of subscriptions: cancel (with a reason), record a renewal by hand, a plan's policy, the code."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from orders.subscriptions.cancellation import REASON_LABELS

WHEN_CHOICES = [
    ("at_period_end", _l("At the period end (到期不续费): rights stay until then, undoable")),
    ("now", _l("Now (立即取消): ends today")),
]
REFUND_CHOICES = [
    ("none", _l("No refund")),
    ("prorated", _l("Prorated: the unused whole days of the period")),
]


def reason_choices() -> list[tuple[str, object]]:
    """Return the reason list with an empty first choice (the reason is optional)."""
    return [("", _l("(no reason given)")), *REASON_LABELS.items()]


class CancelForm(FlaskForm):
    """Cancel a subscription, now or at the period end, with an optional reason."""

    when = RadioField(_l("When"), choices=WHEN_CHOICES, default="at_period_end", validators=[DataRequired()])
    reason_code = SelectField(_l("Reason"), choices=reason_choices(), validators=[Optional()])
    reason_text = TextAreaField(_l("In your own words (optional)"), validators=[Optional(), Length(max=2000)])


class RenewForm(FlaskForm):
    """Record a renewal payment received outside any connected channel (manual entry)."""

    amount = StringField(_l("Amount paid"), validators=[DataRequired()])
    reference = StringField(
        _l("Payment reference (repeating it records nothing twice)"),
        validators=[DataRequired(), Length(max=120)],
    )


class PolicyForm(FlaskForm):
    """A renewable plan's subscription policy."""

    grace_days = IntegerField(
        _l("Grace days after the period end"),
        default=3,
        validators=[InputRequired(), NumberRange(min=0, max=90)],
    )
    reminder_offsets = StringField(
        _l("Reminders, days before the period end (e.g. 7, 3)"), validators=[Optional(), Length(max=60)]
    )
    cancel_now_refund = SelectField(_l("Cancel-now refund"), choices=REFUND_CHOICES)


class CodeForm(FlaskForm):
    """The six-digit code mailed to the customer."""

    code = StringField(_l("Code"), validators=[DataRequired(), Length(min=6, max=6)])
