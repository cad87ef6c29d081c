"""Languages: Simplified Chinese by default, English on request; the user's own choice wins."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

from saas.extensions import db
from saas.i18n import TRANSLATIONS_DIR
from tests.factories import Shop, login

CATALOGUE = Path(TRANSLATIONS_DIR) / "zh" / "LC_MESSAGES"


def test_the_back_office_speaks_chinese_by_default(client: FlaskClient, shop: Shop) -> None:
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


def test_the_compiled_catalogue_matches_its_source() -> None:
    with open(CATALOGUE / "messages.po", "rb") as po, open(CATALOGUE / "messages.mo", "rb") as mo:
        source, compiled = read_po(po), read_mo(mo)
    expected = {m.id: m.string for m in source if m.id and m.string}
    actual = {m.id: m.string for m in compiled if m.id}
    assert actual == expected, "run `make translations` to recompile messages.mo"
