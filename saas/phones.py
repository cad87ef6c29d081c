"""Phone numbers: normalised to E.164 (`+86` when no country code is given) and validated in one place."""

from __future__ import annotations

import re

DEFAULT_COUNTRY_CODE = "86"
_SEPARATORS = re.compile(r"[\s\-().·]")
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class PhoneInvalid(ValueError):
    """A phone number that cannot be read as a mobile number."""


def normalise_phone(value: str, default_country_code: str = DEFAULT_COUNTRY_CODE) -> str:
    """Return `value` as E.164 (`+8613812345678`); PhoneInvalid when it is not a phone number.

    `138 1234 5678`, `+86 138-1234-5678`, `0086…` and `86…` (11 digits after 86) all read as one number;
    a mainland number must be a mobile number (an SMS to a landline is lost).
    """
    raw = _SEPARATORS.sub("", (value or "").strip())
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if raw.startswith("+"):
        digits = raw[1:]
    elif raw.startswith(default_country_code) and len(raw) == len(default_country_code) + 11:
        digits = raw
    else:
        digits = default_country_code + raw
    if not digits.isdigit() or not 8 <= len(digits) <= 15 or digits.startswith("0"):
        raise PhoneInvalid(f"not a phone number: {value!r}")
    if digits.startswith("86") and not _MAINLAND_MOBILE.match(digits[2:]):
        raise PhoneInvalid(f"not a mainland mobile number: {value!r}")
    return "+" + digits


def phone_or_none(value: str | None) -> str | None:
    """Return the E.164 form of `value`, or None when it is empty or not a phone number."""
    if not value:
        return None
    try:
        return normalise_phone(value)
    except PhoneInvalid:
        return None


def national_number(e164: str) -> str:
    """Return what Aliyun takes: the bare mainland number, or country code and number without `+`."""
    return e164[3:] if e164.startswith("+86") else e164.lstrip("+")
