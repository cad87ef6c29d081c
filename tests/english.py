"""Find English left in what a Chinese reader sees: the visible text of a page, or a mail's text."""

from __future__ import annotations

import html
import re

# Names and abbreviations a Chinese page writes in Latin letters too.
ALLOWED = frozenset(
    {
        "Quanyi",
        "Shopify",
        "Stripe",
        "WooCommerce",
        "English",  # the language picker names each language in itself
        "Webhook",  # the word Chinese merchants use too
        "Quanyi-Signature",  # a header's name
        "plan_id",  # a field of the documented webhook body, typed as is
        "unix",  # t=<unix seconds> in the signature header's format
    }
)

_INVISIBLE = re.compile(r"<(script|style|code|pre|textarea|title)\b.*?</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]*>")
_ZONE = re.compile(r"\b[A-Z][a-z]+/[A-Z][A-Za-z_]+\b")  # a time zone: Asia/Shanghai
_DOTTED = re.compile(r"\b[a-z_]+(?:\.[a-z_]+)+\b")  # an event or permission name: order.fulfilled
_QUOTED = re.compile(r"'[^'\s]+'")  # a value quoted as the code wrote it: 'generic'
_FILE = re.compile(r"[\w/-]+\.(?:csv|xlsx|txt|pdf|md)\b", re.I)  # a file's name: demo-keys.csv
_EMAIL = re.compile(r"[\w.+*-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|/)[^\s<>\"']*")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’_-]*(?:/[A-Za-z_]+)?")


def visible_text(page: str) -> str:
    """Return the text nodes of an HTML page: no tags, scripts, styles or code."""
    return html.unescape(_TAG.sub(" ", _INVISIBLE.sub(" ", page)))


def english_words(text: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Return the English words of `text`, after removing emails, URLs, codes and allowed names.

    A word with a digit next to it is a code (an order number `SO-1001`, a mask `K000…`); an all-capitals
    word is an abbreviation (API, CSV, SKU, ROI, CNY, IP); a dotted name is an event or permission
    (`order.fulfilled`). A word with an underscore is a raw enum code (`card_key`): exactly what must not
    show, so it counts.
    """
    text = _QUOTED.sub(" ", _FILE.sub(" ", text))
    text = _DOTTED.sub(" ", _URL.sub(" ", _EMAIL.sub(" ", _ZONE.sub(" ", text))))
    found = []
    for match in _WORD.finditer(text):
        word = match.group(0).strip("'’-")
        before = text[match.start() - 1 : match.start()]
        after = text[match.end() : match.end() + 1]
        if not word or word in ALLOWED or word in allowed:
            continue
        if before.isdigit() or after.isdigit() or (before == "-" and after.isalnum()):
            continue
        if len(word) == 1 or (word.isupper() and "_" not in word):  # t=…,v1=… in a header's format
            continue
        found.append(word)
    return found


def english_in_page(page: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Return the English words a reader of this HTML page sees."""
    return english_words(visible_text(page), allowed)
