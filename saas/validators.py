"""Form validators shared by every package."""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _
from wtforms.validators import ValidationError


class EmailAddress:
    """Accept a syntactically valid address; outside production the reserved `.test` domains too."""

    def __call__(self, form: Any, field: Any) -> None:
        testing = current_app.config["ENV_NAME"] != "production"
        try:
            validate_email(field.data or "", check_deliverability=False, test_environment=testing)
        except EmailNotValidError as error:
            raise ValidationError(_("This is not a valid email address.")) from error
