"""Upload caps per kind (413 with the limit, nothing kept) and XLSX files that cannot hurt us.

A workbook is checked as a ZIP archive before openpyxl opens it (a zip bomb is refused by its declared
sizes), and openpyxl reads cached values only: a formula is never evaluated.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale
from openpyxl import Workbook

from catalog import fileformats, inventory
from catalog.fileformats import FileFormatError
from catalog.models import Right
from saas.uploads import UploadTooLarge
from tests.catalog.conftest import database_state
from tests.catalog.factories import key_lines
from tests.catalog.test_import_files import Unchanged, run
from tests.factories import Shop, login


@pytest.fixture(autouse=True)
def in_english(app: Flask) -> Iterator[None]:
    """Read refusals outside a request in English (the catalogue has Chinese ones)."""
    with force_locale("en"):
        yield


def workbook(tmp_path: Path, rows: list[list[object]], name: str = "keys.xlsx") -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    book.save(path)
    return path


def zip_bomb_workbook(tmp_path: Path) -> Path:
    """A real workbook with one extra member: 64 MB of zeros that deflate to about 64 KB."""
    path = workbook(tmp_path, [[line] for line in key_lines(3)], "bomb.xlsx")
    zeros = bytes(1024 * 1024)
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("xl/media/image1.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(64):
            member.write(zeros)
    assert path.stat().st_size < 1024 * 1024
    return path


def imports_folder(app: Flask, shop: Shop) -> list[Path]:
    folder = Path(app.config["FILES_DIR"]) / "imports" / str(shop.tenant.id)
    return list(folder.iterdir()) if folder.exists() else []


def test_a_zip_bomb_workbook_is_refused_before_it_is_unpacked(
    shop: Shop, right: Right, tmp_path: Path, unchanged: Unchanged
) -> None:
    same_as_before = unchanged()
    bomb = zip_bomb_workbook(tmp_path)
    with shop.bound(), pytest.raises(FileFormatError, match="zip bomb"):
        run(bomb, right)
    same_as_before()


def test_a_zip_bomb_upload_leaves_no_upload_behind(
    app: Flask, shop: Shop, right: Right, tmp_path: Path
) -> None:
    bomb = zip_bomb_workbook(tmp_path)
    with shop.bound(), pytest.raises(FileFormatError), bomb.open("rb") as stream:
        inventory.start_upload(stream, "bomb.xlsx", right_id=right.id, supplier="s", unit_cost="1.00")
    assert imports_folder(app, shop) == []


def test_a_workbook_unpacking_beyond_the_total_cap_is_refused(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, right: Right, tmp_path: Path
) -> None:
    path = workbook(tmp_path, [[line] for line in key_lines(20)])
    monkeypatch.setattr(fileformats, "XLSX_MAX_UNCOMPRESSED_BYTES", 4096)
    with shop.bound(), pytest.raises(FileFormatError, match="unpacks to more than"):
        run(path, right)


def test_formulas_in_a_workbook_are_never_evaluated(shop: Shop, right: Right, tmp_path: Path) -> None:
    keys = key_lines(2)
    path = workbook(tmp_path, [[keys[0]], ["=1+1"], ['=CONCATENATE("EVIL","KEY")'], [keys[1]]])
    sample = [cell for _line, row in fileformats.detect(path).sample for cell in row]
    assert not {2, "2", "=1+1", "EVILKEY"} & set(sample)
    with shop.bound():
        outcome = run(path, right)
    assert outcome.imported == 2  # openpyxl wrote no cached values: the formula cells read as empty


def test_a_card_key_file_over_the_cap_is_refused_and_nothing_is_kept(
    app: Flask, shop: Shop, right: Right
) -> None:
    app.config["CARD_KEY_UPLOAD_MAX_BYTES"] = 1000
    content = ("\n".join(key_lines(60)) + "\n").encode()
    with shop.bound(), pytest.raises(UploadTooLarge) as refused:
        inventory.start_upload(
            io.BytesIO(content), "k.txt", right_id=right.id, supplier="s", unit_cost="1.00"
        )
    assert refused.value.code == 413
    assert imports_folder(app, shop) == []
    with shop.bound():
        assert database_state()["batches"] == []


def test_the_import_page_answers_413_with_the_limit(
    app: Flask, client: FlaskClient, shop: Shop, right: Right
) -> None:
    with shop.bound():
        right_id = right.id
    app.config["CARD_KEY_UPLOAD_MAX_BYTES"] = 1024 * 1024
    login(client, shop.owner)
    big = io.BytesIO(("\n".join(key_lines(40_000)) + "\n").encode())
    answer = client.post(
        "/t/acme/catalog/inventory/import",
        data={"right_id": str(right_id), "supplier": "s", "unit_cost": "1.00", "file": (big, "big.txt")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 413 and "at most 1 MB" in answer.get_data(as_text=True)
    assert imports_folder(app, shop) == []


def test_the_api_answers_413_in_json(app: Flask, client: FlaskClient, shop: Shop, right: Right) -> None:
    with shop.bound():
        right_id = right.id
    from tests.catalog.test_api_cli_and_keys import api_key

    app.config["CARD_KEY_UPLOAD_MAX_BYTES"] = 500
    answer = client.post(
        "/api/v1/inventory/imports",
        headers=api_key(shop),
        data={
            "right_id": str(right_id),
            "supplier": "s",
            "unit_cost": "1.00",
            "file": (io.BytesIO(("\n".join(key_lines(30)) + "\n").encode()), "k.txt"),
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 413 and answer.json is not None
    assert answer.json["code"] == "payload_too_large" and imports_folder(app, shop) == []


def test_an_order_csv_over_the_cap_is_refused_and_no_order_is_made(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    from orders.models import Order
    from saas.extensions import db

    app.config["ORDER_CSV_MAX_BYTES"] = 200
    login(client, shop.owner)
    rows = "external_id,sku,quantity,email\n" + "".join(f"C{n},VIP,1,a{n}@example.test\n" for n in range(20))
    answer = client.post(
        "/t/acme/orders/upload",
        data={"file": (io.BytesIO(rows.encode()), "orders.csv")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 413 and "too large" in answer.get_data(as_text=True)
    with shop.bound():
        assert db.session.query(Order).count() == 0


def test_a_redemption_report_over_the_cap_is_refused(app: Flask, client: FlaskClient, shop: Shop) -> None:
    app.config["REDEMPTION_REPORT_MAX_BYTES"] = 100
    login(client, shop.owner)
    answer = client.post(
        "/t/acme/orders/redemptions/report",
        data={"file": (io.BytesIO(b"code\n" + b"X" * 500 + b"\n"), "used.csv"), "supplier": "s"},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 413
