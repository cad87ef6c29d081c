"""Money: integer minor units plus an ISO 4217 code, read, written and converted in this one module.

Every amount in the database, the API and the jobs is an integer count of the currency's minor unit (分 for
CNY, cents for USD, whole yen for JPY) beside its currency code. This module is the only place that turns
text into minor units (`parse`, `parse_optional`), minor units into text for people (`format_money`, with
the currency's symbol in the tenant's locale) or for files and form fields (`to_text`), and minor units into
`Decimal` for reports (`to_decimal`). It knows each currency's minor unit (`minor_unit`): CNY 2, JPY 0,
KWD 3, so a JPY amount is never shown divided by 100. Nothing here goes through `float`.

Reading is strict: an amount is digits with an optional sign and decimal point, optionally grouped by
thousands with commas (`1,234.50`, never `12,50`), optionally with one currency mark (`¥`, `￥`, `$`, `€`,
`£`, `元`, or the currency's own code; `RMB` for CNY), and accounting parentheses for a negative amount
(`(3.00)`). More decimals than the currency has, a negative amount where none is allowed, and an amount that
does not fit a 64-bit signed integer are refused with a `MoneyError` that says which.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, DecimalException
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal, get_currency_symbol
from flask import current_app, g, has_app_context
from flask_babel import gettext as _

DEFAULT_CURRENCY = "CNY"
DEFAULT_LOCALE = "zh_CN"
SYMBOL_LOCALE = "zh_CN"
MAX_MINOR_UNITS = 2**63 - 1  # the database's BIGINT
MAX_TEXT_LENGTH = 64

# ISO 4217 minor units of the currencies that do not have two decimals (every other code has two).
_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_MINOR_UNIT_EXCEPTIONS: dict[str, int] = {
    **dict.fromkeys(_ZERO_DECIMALS.split(), 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}
_SYMBOLS = ("¥", "$", "€", "£", "元")
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_PLAIN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?", re.ASCII)


class MoneyError(ValueError):
    """A value that is not an amount of the currency; the message says why, in the reader's language."""


def check_currency(currency: str) -> str:
    """Return a currency code in upper case; MoneyError unless it is three letters such as CNY."""
    code = (currency or "").strip().upper()
    if not _CURRENCY_CODE.fullmatch(code):
        raise MoneyError(_("Currency is a three-letter ISO code such as CNY."))
    return code


def minor_unit(currency: str) -> int:
    """Return how many decimals the currency's minor unit has: CNY 2, USD 2, JPY 0, KWD 3."""
    return _MINOR_UNIT_EXCEPTIONS.get(check_currency(currency), 2)


# ---------------------------------------------------------------- reading


def _amount_text(value: str, currency: str) -> tuple[str, bool]:
    """Strip the marks around an amount typed by a person or a file; return (number text, parenthesised)."""
    text = unicodedata.normalize("NFKC", value).strip()  # full-width ￥１２，３４ become ¥12,34
    negative = len(text) > 2 and text[0] == "(" and text[-1] == ")"
    if negative:
        text = text[1:-1].strip()
    upper = text.upper()
    codes = (currency, "RMB") if currency == "CNY" else (currency,)
    for code in codes:
        if upper.startswith(code):
            text = text[len(code) :].strip()
            break
        if upper.endswith(code):
            text = text[: -len(code)].strip()
            break
    sign = ""
    if text[:1] in "+-" and text[1:2] in _SYMBOLS:  # -¥12.50
        sign, text = text[0], text[1:]
    for symbol in _SYMBOLS:
        if text.startswith(symbol):
            text = text[len(symbol) :].strip()
            break
        if text.endswith(symbol):
            text = text[: -len(symbol)].strip()
            break
    return sign + text, negative


def parse(
    value: str | int | Decimal,
    currency: str = DEFAULT_CURRENCY,
    *,
    negative: bool = False,
    rounding: str | None = None,
) -> int:
    """Read an amount in major units ("1,234.50", 12, Decimal("9.9")) as integer minor units of `currency`.

    Strict: MoneyError for anything that is not an amount, for more decimals than the currency has (unless
    a `rounding` mode such as `decimal.ROUND_HALF_UP` is given, for figures a platform computed by
    division), for a negative amount unless `negative` is true, and for an amount beyond a 64-bit integer.
    """
    code = check_currency(currency)
    places = minor_unit(code)
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise MoneyError(_("%(value)s is not an amount.", value=str(value)[:40]))
    parenthesised = False
    if isinstance(value, str):
        if len(value) > MAX_TEXT_LENGTH:
            raise MoneyError(_("%(value)s… is not an amount.", value=value[:20]))
        text, parenthesised = _amount_text(value, code)
        if _GROUPED.fullmatch(text):
            text = text.replace(",", "")
        if not _PLAIN.fullmatch(text):
            raise MoneyError(_("%(value)s is not an amount.", value=value.strip()[:40] or '""'))
        if parenthesised and text[:1] in "+-":
            raise MoneyError(_("%(value)s is not an amount.", value=value.strip()[:40]))
        amount = Decimal(text)
    elif isinstance(value, int):
        amount = Decimal(value)
    else:
        amount = value
    if not amount.is_finite():
        raise MoneyError(_("%(value)s is not an amount.", value=str(value)[:40]))
    if parenthesised:
        amount = -amount
    if amount < 0 and not negative:
        raise MoneyError(_("The amount cannot be negative."))
    try:
        minor = amount.scaleb(places)
        if minor and minor.adjusted() > 18:  # beyond 19 digits: refuse before building a huge int
            raise MoneyError(_("The amount is too large."))
        if rounding is not None:
            minor = minor.to_integral_value(rounding=rounding)
        if minor != minor.to_integral_value():
            raise MoneyError(
                _("%(currency)s amounts have at most %(places)d decimals.", currency=code, places=places)
                if places
                else _("%(currency)s amounts are whole numbers.", currency=code)
            )
        result = int(minor)
    except DecimalException as error:  # an exponent beyond the decimal context
        raise MoneyError(_("The amount is too large.")) from error
    if abs(result) > MAX_MINOR_UNITS:
        raise MoneyError(_("The amount is too large."))
    return result


def parse_optional(
    value: str | int | Decimal | None,
    currency: str = DEFAULT_CURRENCY,
    *,
    negative: bool = False,
    rounding: str | None = None,
) -> int | None:
    """Read an amount like `parse`, or None when the value is None or blank text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse(value, currency, negative=negative, rounding=rounding)


# ---------------------------------------------------------------- writing


def to_decimal(minor_units: int, currency: str = DEFAULT_CURRENCY) -> Decimal:
    """Return minor units as an exact Decimal of major units: (167560, CNY) -> Decimal("1675.60")."""
    return Decimal(int(minor_units)).scaleb(-minor_unit(currency))


@lru_cache(maxsize=65536)
def to_text(minor_units: int, currency: str = DEFAULT_CURRENCY) -> str:
    """Write minor units as plain decimal text for files and form fields: (-1234, CNY) -> "-12.34".

    Cached: an export repeats the same few prices, fees and costs on most of its lines.
    """
    return str(to_decimal(minor_units, currency))


@lru_cache(maxsize=256)
def _style(currency: str, locale: str) -> tuple[str, str, Locale]:
    """Return (symbol, number pattern, locale) for writing amounts of `currency` in `locale`."""
    try:
        parsed = Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        parsed = Locale.parse(DEFAULT_LOCALE)
    places = minor_unit(currency)
    # The symbols of the Chinese convention whatever the language: ¥ is the yuan (never the yen, JP¥),
    # US$ and HK$ are told apart; an English page of a Chinese shop still writes ¥ for its yuan.
    symbol = get_currency_symbol(currency, SYMBOL_LOCALE)
    if symbol == currency:
        symbol += " "  # KWD 1.234
    return symbol, "#,##0" + ("." + "0" * places if places else ""), parsed


def tenant_locale() -> str:
    """Return the locale amounts are written in: the request's tenant's, else the app's default."""
    if not has_app_context():
        return DEFAULT_LOCALE
    tenant = g.get("tenant")
    locale = getattr(tenant, "locale", None) or current_app.config.get("BABEL_DEFAULT_LOCALE")
    return str(locale or DEFAULT_LOCALE)


def format_money(minor_units: int | None, currency: str = DEFAULT_CURRENCY, locale: str | None = None) -> str:
    """Format minor units for a person, with the currency's symbol: (167560, CNY) -> "¥1,675.60".

    Separators follow `locale`, by default the tenant's (`tenant_locale`); symbols are the Chinese ones
    in every language (¥ yuan, JP¥ yen, US$, HK$, €), so ¥ never means two currencies. None gives "".
    """
    if minor_units is None:
        return ""
    code = check_currency(currency)
    symbol, pattern, parsed = _style(code, locale or tenant_locale())
    amount = to_decimal(abs(int(minor_units)), code)
    number = format_decimal(amount, format=pattern, locale=parsed, decimal_quantization=False)
    return f"{'-' if minor_units < 0 else ''}{symbol}{number}"
