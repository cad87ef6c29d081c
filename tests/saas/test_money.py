"""saas.money: the one module that reads, writes and converts amounts, per currency."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask, g, render_template_string

from saas import money

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("currency", "places"),
    [("CNY", 2), ("USD", 2), ("EUR", 2), ("HKD", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3)],
)
def test_each_currency_has_its_minor_unit(currency: str, places: int) -> None:
    assert money.minor_unit(currency) == places
    assert money.minor_unit(currency.lower()) == places


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "CNY", 1250),
        ("12", "CNY", 1200),
        (" 1,234.50 ", "CNY", 123450),
        ("¥19.90", "CNY", 1990),
        ("￥１９．９０", "CNY", 1990),  # full-width, as a Chinese keyboard types it
        ("12元", "CNY", 1200),
        ("RMB 8", "CNY", 800),
        ("CNY 8.00", "CNY", 800),
        ("12.500", "CNY", 1250),  # trailing zeros are not extra precision
        ("1,200", "JPY", 1200),  # yen have no minor unit: 1,200 yen is 1200, not 120000
        ("1.234", "KWD", 1234),
        (Decimal("9.9"), "CNY", 990),
        (12, "CNY", 1200),  # an int is major units too
        ("92233720368547758.07", "CNY", 2**63 - 1),
    ],
)
def test_amounts_are_read_exactly_into_minor_units(
    text: str | int | Decimal, currency: str, minor: int
) -> None:
    assert money.parse(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not an amount"),
        ("abc", "not an amount"),
        ("NaN", "not an amount"),
        ("Infinity", "not an amount"),
        ("1e3", "not an amount"),
        ("1_000", "not an amount"),
        ("1.2.3", "not an amount"),
        ("12,50", "not an amount"),  # a decimal comma is not read as 1250 yuan
        ("USD 12", "not an amount"),  # another currency's code
        ("12.345", "at most 2 decimals"),
        ("-1", "cannot be negative"),
        ("92233720368547758.08", "too large"),
        ("9" * 40, "too large"),
        ("1" * 100, "not an amount"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(money.MoneyError, match=why):
        money.parse(text, "CNY")


def test_other_bad_inputs_are_refused() -> None:
    assert money.parse(Decimal("0E+1000"), "CNY") == 0
    for value in (1.5, True, None, Decimal("NaN"), Decimal("1E+999999999")):
        with pytest.raises(money.MoneyError):
            money.parse(value, "CNY")  # type: ignore[arg-type]
    with pytest.raises(money.MoneyError, match="whole numbers"):
        money.parse("12.5", "JPY")
    with pytest.raises(money.MoneyError, match="three-letter"):
        money.parse("12", "元")


def test_negative_and_rounded_amounts_only_when_asked() -> None:
    assert money.parse("-12.5", "CNY", negative=True) == -1250
    assert money.parse("(3.00)", "CNY", negative=True) == -300
    assert money.parse("-¥3", "CNY", negative=True) == -300
    assert money.parse("0.005", "CNY", rounding=ROUND_HALF_UP) == 1
    assert money.parse_optional("  ", "CNY") is None and money.parse_optional(None) is None


def test_amounts_are_written_per_currency_never_divided_by_100_blindly() -> None:
    assert money.format_money(167560, "CNY", "zh_CN") == "¥1,675.60"
    assert money.format_money(-167560, "CNY", "zh_CN") == "-¥1,675.60"
    assert money.format_money(1200, "JPY", "zh_CN") == "JP¥1,200"
    assert money.format_money(1200, "JPY", "en") == "JP¥1,200"  # ¥ is the yuan only
    assert money.format_money(167560, "CNY", "en") == "¥1,675.60"
    assert money.format_money(1990, "USD", "zh_CN") == "US$19.90"
    assert money.format_money(1234, "KWD", "en") == "KWD 1.234"
    assert money.format_money(None, "CNY") == ""
    assert money.to_decimal(167560, "CNY") == Decimal("1675.60") and str(money.to_decimal(5, "CNY")) == "0.05"
    assert money.to_decimal(1200, "JPY") == Decimal(1200)
    assert money.to_text(-1, "CNY") == "-0.01" and money.to_text(1200, "JPY") == "1200"


def test_reading_what_was_written_gives_the_same_minor_units() -> None:
    for currency in ("CNY", "JPY", "KWD"):
        for minor in (0, 1, 99, 100, 123456789, 2**63 - 1):
            assert money.parse(money.to_text(minor, currency), currency) == minor


def test_the_jinja_filter_formats_in_the_tenants_locale(app: Flask) -> None:
    with app.test_request_context():
        g.tenant = SimpleNamespace(locale="zh_CN")
        assert render_template_string("{{ 1200|money('JPY') }}") == "JP¥1,200"
        assert render_template_string("{{ 167560|money('CNY') }}") == "¥1,675.60"
        g.tenant = SimpleNamespace(locale="en")
        assert render_template_string("{{ 1200|money('JPY') }}") == "JP¥1,200"
        assert render_template_string("{{ 167560|money('USD') }}") == "US$1,675.60"


def test_no_other_module_divides_money_by_100_or_parses_it() -> None:
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts or path.name == "money.py":
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("def parse_money", "def minor_units", "price / 100", "amount / 100", "cost / 100"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        if "price / 100" in text or "amount / 100" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders
