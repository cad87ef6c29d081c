"""Tenant forms: sign-up, invitations, roles, API keys, settings."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Optional

from saas import labels
from saas.validators import EmailAddress
from tenants.roles import PERMISSIONS, Role

ROLE_CHOICES = labels.choices("role", [role.value for role in Role])


class SignUpForm(FlaskForm):
    tenant_name = StringField(_l("Shop name"), validators=[DataRequired(), Length(max=120)])
    slug = StringField(
        _l("Address (letters, digits, dashes)"), validators=[DataRequired(), Length(min=3, max=63)]
    )
    name = StringField(_l("Your name"), validators=[Optional(), Length(max=120)])
    email = EmailField(_l("Email"), validators=[DataRequired(), EmailAddress()])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=10)])


class InviteForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), EmailAddress()])
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, default=Role.OPERATOR.value)


class AcceptInvitationForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[Optional(), Length(max=120)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=10)])


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=500)])


class ReasonForm(FlaskForm):
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=500)])


class ApiKeyForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    scopes = SelectMultipleField(
        _l("Scopes"), choices=[(name, description) for name, (description, _roles) in PERMISSIONS.items()]
    )


class SettingsForm(FlaskForm):
    name = StringField(_l("Shop name"), validators=[DataRequired(), Length(max=120)])
    time_zone = StringField(_l("Time zone"), validators=[DataRequired()])
    locale = SelectField(_l("Language"), choices=[("zh_CN", "简体中文"), ("en", "English")])
    currency = StringField(_l("Currency"), validators=[DataRequired(), Length(min=3, max=3)])
    require_owner_two_factor = BooleanField(_l("Owners must use two-factor authentication"))


class SmsSettingsForm(FlaskForm):
    """The tenant's SMS 签名, the channel for customers with both, and one template code per SMS kind."""

    sign_name = StringField(_l("SMS signature (签名)"), validators=[Optional(), Length(max=40)])
    prefer = SelectField(
        _l("A customer with both an email and a phone gets"),
        choices=[("mail", _l("Mail")), ("sms", _l("SMS"))],
    )
    delivery = StringField(validators=[Optional(), Length(max=40)])
    backorder_filled = StringField(validators=[Optional(), Length(max=40)])
    renewal_reminder = StringField(validators=[Optional(), Length(max=40)])
    verification_code = StringField(validators=[Optional(), Length(max=40)])
    cancellation_receipt = StringField(validators=[Optional(), Length(max=40)])
    family_shared = StringField(validators=[Optional(), Length(max=40)])
