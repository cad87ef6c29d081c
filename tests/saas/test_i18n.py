"""Languages: Simplified Chinese by default, English on request; the user's own choice wins."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

from saas.extensions import db
from saas.i18n import TRANSLATIONS_DIR
from tests.factories import Shop, login

CATALOGUE = Path(TRANSLATIONS_DIR) / "zh" / "LC_MESSAGES"


def test_a_chinese_browser_gets_the_back_office_in_chinese(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/team", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(
        as_text=True
    )
    assert "团队" in page and "邀请成员" in page and 'lang="zh-CN"' in page


def test_an_english_browser_gets_english(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/team", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(
        as_text=True
    )
    assert "Invite a member" in page and "邀请成员" not in page


def test_the_users_setting_beats_the_browser(client: FlaskClient, shop: Shop) -> None:
    shop.owner.locale = "en"
    db.session.commit()
    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/team", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "Invite a member" in page


def test_merchants_get_simplified_chinese_unless_they_ask_otherwise() -> None:
    from saas.config import DevelopmentConfig, ProductionConfig

    assert DevelopmentConfig.BABEL_DEFAULT_LOCALE == ProductionConfig.BABEL_DEFAULT_LOCALE == "zh_CN"


def test_the_compiled_catalogue_matches_its_source() -> None:
    with open(CATALOGUE / "messages.po", "rb") as po, open(CATALOGUE / "messages.mo", "rb") as mo:
        source, compiled = read_po(po), read_mo(mo)
    expected = {(m.context, m.id): m.string for m in source if m.id and m.string and not m.fuzzy}
    actual = {(m.context, m.id): m.string for m in compiled if m.id}
    assert actual == expected, "run `make translations` to recompile messages.mo"


_PLACEHOLDER = re.compile(r"%\([^)]+\)[sdif]|%[sdif]|%%|\{[^{}]*\}")


MessageKey = tuple[str | None, str]  # (context, msgid): a label's context is its enum (saas/labels.py)


def _extracted_messages(tmp_path: Path) -> dict[MessageKey, tuple[str, int]]:
    """Every msgid the code marks for translation today: `pybabel extract` run as `make translations` runs it.

    The arguments are read from the Makefile, so the test and the command cannot drift apart.
    """
    root = Path(__file__).resolve().parents[2]
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    found_line = re.search(r"pybabel extract (.+)", makefile)
    assert found_line is not None, "the Makefile's translations target no longer runs pybabel extract"
    arguments = shlex.split(found_line.group(1))
    output = arguments.index("-o") + 1
    arguments[output] = str(tmp_path / "messages.pot")
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", *arguments],
        cwd=root,
        check=True,
    )
    with open(tmp_path / "messages.pot", "rb") as pot:
        template = read_po(pot)
    found: dict[MessageKey, tuple[str, int]] = {}
    for message in template:
        if not message.id:
            continue
        path, line = message.locations[0] if message.locations else ("?", 0)
        for msgid in message.id if isinstance(message.id, tuple) else (message.id,):
            found.setdefault((message.context, msgid), (path, int(line or 0)))
    return found


def _translations() -> dict[MessageKey, str]:
    """The catalogue's Chinese for each (context, msgid); fuzzy or empty entries count as missing."""
    with open(CATALOGUE / "messages.po", "rb") as po:
        catalogue = read_po(po)
    translations: dict[MessageKey, str] = {}
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        translated = "" if message.fuzzy or not all(strings) else strings[0]
        for msgid in ids:  # a plural entry: Chinese has one form, standing for both msgids
            translations[(message.context, msgid)] = translated
    return translations


def _shown(key: MessageKey) -> str:
    context, msgid = key
    return f"[{context}] {msgid!r}" if context else repr(msgid)


def test_every_message_in_the_code_is_translated_with_its_placeholders(tmp_path: Path) -> None:
    translations = _translations()
    extracted = _extracted_messages(tmp_path)
    assert len(extracted) > 100, "extraction found almost nothing: check babel.cfg"

    untranslated = sorted(
        f"{path}:{line}: {_shown(key)}"
        for key, (path, line) in extracted.items()
        if not translations.get(key)
    )
    assert not untranslated, (
        f"{len(untranslated)} messages have no Chinese (or only a fuzzy guess): "
        "run `make translations`, then fill these msgstrs in "
        "saas/translations/zh/LC_MESSAGES/messages.po and drop any `#, fuzzy` flag:\n"
        + "\n".join(untranslated)
    )

    mismatched = [
        f"{_shown(key)} -> {translations[key]!r}"
        for key in extracted
        if sorted(_PLACEHOLDER.findall(key[1])) != sorted(_PLACEHOLDER.findall(translations[key]))
        or key[1].count("\n") != translations[key].count("\n")
    ]
    assert not mismatched, "placeholders or line breaks differ:\n" + "\n".join(mismatched)


def test_the_catalogue_has_no_fuzzy_entries() -> None:
    with open(CATALOGUE / "messages.po", "rb") as po:
        fuzzy = [_shown((m.context, str(m.id))) for m in read_po(po) if m.id and m.fuzzy]
    assert not fuzzy, "fuzzy entries are guesses `pybabel update` made; check and unflag them:\n" + "\n".join(
        fuzzy
    )
