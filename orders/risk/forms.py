"""Back-office forms of risk control."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange

from orders.risk.models import BLOCK_KINDS, RULE_KINDS
from saas.labels import LABELS

BLOCK_KIND_LABELS = LABELS["block_kind"]
RULE_LABELS = LABELS["risk_rule"]


class DecisionForm(FlaskForm):
    """Approve or reject a held order, or resolve a flag: a note is required."""

    note = TextAreaField(_l("Note"), validators=[DataRequired(), Length(max=2000)])


class BlockForm(FlaskForm):
    """Add a value to the blocklist, with the reason."""

    kind = SelectField(_l("Kind"), choices=[(k, BLOCK_KIND_LABELS[k]) for k in BLOCK_KINDS])
    value = StringField(_l("Value"), validators=[DataRequired(), Length(max=254)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=2000)])


class RuleForm(FlaskForm):
    """Set one velocity rule: at most `threshold` within `window_minutes`."""

    kind = SelectField(_l("Rule"), choices=[(k, RULE_LABELS[k]) for k in RULE_KINDS])
    threshold = IntegerField(_l("At most"), validators=[DataRequired(), NumberRange(1, 1_000_000)])
    window_minutes = IntegerField(_l("Within minutes"), validators=[DataRequired(), NumberRange(1, 527_040)])
    active = BooleanField(_l("Active"), default=True)
