"""Importing supplier card-key files: the formats, encodings and accidents suppliers actually send.

Every import goes through `catalog.inventory.import_local_file`, the engine behind the UI, API and CLI.
After a refused import the database holds exactly what it held before.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import Workbook

from catalog import inventory
from catalog.fileformats import FileFormatError
from catalog.importing import ImportFailed
from catalog.models import CardKeyBatch, Right
from saas.extensions import db
from tests.catalog.factories import card_keys_of, import_keys, key_lines, make_right, write_file
from tests.factories import Shop

Unchanged = Callable[[], Callable[[], None]]


def run(path: Path, right: Right, **options: object) -> inventory.importing.ImportOutcome:
    report = path.with_suffix(".rejections.csv")
    return inventory.import_local_file(
        path,
        right_id=right.id,
        supplier="深圳卡盟供货商",
        unit_cost="12.50",
        options=dict(options),
        report_path=report,
    )


def test_one_key_per_line_is_imported_masked_and_encrypted(shop: Shop, right: Right, tmp_path: Path) -> None:
    path = write_file(tmp_path, "codes.txt", "ABCD1234EFGH5678\nWXYZ9876MNPQ5432\n")
    with shop.bound():
        outcome = run(path, right)
        keys = card_keys_of(right)
    assert outcome.counts() == {
        "rows_read": 2,
        "imported": 2,
        "duplicates_in_file": 0,
        "duplicates_in_stock": 0,
        "rejected": 0,
    }
    assert sorted(k.mask for k in keys) == ["ABCD••••••5678", "WXYZ••••••5432"]
    assert all(k.status == "available" for k in keys)


def test_the_stored_ciphertext_never_contains_the_plaintext(shop: Shop, right: Right, tmp_path: Path) -> None:
    secret = "SECRET-PLAINTEXT-7F9Q"
    path = write_file(tmp_path, "k.txt", f"6212260000001234----{secret}\n")
    with shop.bound():
        run(path, right)
        (key,) = card_keys_of(right)
    stored = bytes(key.ciphertext) + bytes(key.code_hash) + key.mask.encode()
    assert secret.encode() not in stored and b"6212260000001234" not in stored
    assert key.mask == "6212••••••1234"


@pytest.mark.parametrize("separator", ["----", "\t", ",", "|", " "])
def test_card_and_secret_pairs_with_any_common_separator(
    shop: Shop, right: Right, tmp_path: Path, separator: str
) -> None:
    lines = [f"CARD{n:08d}{separator}PASS{n:08d}" for n in range(20)]
    path = write_file(tmp_path, "pairs.txt", "\n".join(lines))
    with shop.bound():
        outcome = run(path, right)
        (first, *_rest) = card_keys_of(right)
    assert outcome.imported == 20
    assert first.mask.startswith("CAR")  # the card number, not the secret, is the key's identity


def test_gbk_csv_with_chinese_headers_and_supplier_names(shop: Shop, right: Right, tmp_path: Path) -> None:
    rows = ["卡号,卡密,供应商,有效期"] + [
        f"8{n:011d},密{n:06d}码,深圳市腾飞数码科技有限公司,2099-12-31" for n in range(30)
    ]
    path = write_file(tmp_path, "供货.csv", "\r\n".join(rows), encoding="gbk")
    with shop.bound():
        detection = inventory.fileformats.detect(path)
        outcome = run(path, right)
        keys = card_keys_of(right)
    assert detection.format.encoding == "gb18030"  # GB18030 reads GBK (it is a superset)
    assert detection.format.mapping == {"card": 0, "secret": 1, "expires": 3}
    assert outcome.imported == 30
    assert all(k.expires_at is not None and k.expires_at.year == 2099 for k in keys)


def test_utf8_with_bom_crlf_blank_lines_and_surrounding_spaces(
    shop: Shop, right: Right, tmp_path: Path
) -> None:
    content = (
        "\ufeff卡号\t密码\r\n\r\n  A0001 \t  S0001  \r\n\r\n\u3000A0002\tS0002\u3000\r\n   \r\n"
        "A0003\tS0003\r\n"
    )
    path = write_file(tmp_path, "bom.tsv", content)
    with shop.bound():
        outcome = run(path, right)
        revealed = sorted(inventory.reveal_key(k) for k in card_keys_of(right))
    assert outcome.counts()["imported"] == 3 and outcome.rejected == 0
    assert revealed == ["A0001 S0001", "A0002 S0002", "A0003 S0003"]


def test_duplicates_in_the_file_and_in_stock_are_counted_not_imported(
    shop: Shop, right: Right, tmp_path: Path
) -> None:
    old = key_lines(10)
    with shop.bound():
        import_keys(right, old)
    fresh = key_lines(5)
    path = write_file(tmp_path, "mixed.txt", "\n".join(old[:4] + fresh + fresh[:2]))
    with shop.bound():
        outcome = run(path, right)
        batch = db.session.get(CardKeyBatch, (shop.tenant.id, outcome.batch_id))
        assert len(card_keys_of(right)) == 15
    assert outcome.counts() == {
        "rows_read": 11,
        "imported": 5,
        "duplicates_in_file": 2,
        "duplicates_in_stock": 4,
        "rejected": 0,
    }
    assert batch is not None and (batch.rows_read, batch.imported, batch.duplicates_in_stock) == (11, 5, 4)


def test_the_same_key_may_be_stocked_for_two_different_rights(
    shop: Shop, right: Right, tmp_path: Path
) -> None:
    lines = key_lines(3)
    with shop.bound():
        other = make_right("QQ音乐绿钻")
        assert import_keys(right, lines).imported == 3
        assert import_keys(other, lines).imported == 3


def fifty_thousand_with_a_bad_row(tmp_path: Path) -> Path:
    lines = key_lines(50_000)
    lines.insert(25_000, "this row has no separator at all")
    return write_file(tmp_path, "big.txt", "\n".join(lines) + "\n")


def test_a_malformed_row_in_50000_is_skipped_and_reported(shop: Shop, right: Right, tmp_path: Path) -> None:
    path = fifty_thousand_with_a_bad_row(tmp_path)
    with shop.bound():
        outcome = run(path, right, on_reject="skip")
        assert len(card_keys_of(right)) == 50_000
    assert (outcome.imported, outcome.rejected) == (50_000, 1)
    report = path.with_suffix(".rejections.csv").read_text(encoding="utf-8-sig").splitlines()
    assert report == ["line,reason", '25001,"expected 2 columns, found 1"']


def test_a_malformed_row_in_50000_aborts_everything_when_asked(
    shop: Shop, right: Right, tmp_path: Path, unchanged: Unchanged
) -> None:
    path = fifty_thousand_with_a_bad_row(tmp_path)
    same_as_before = unchanged()
    with shop.bound(), pytest.raises(ImportFailed) as failure:
        run(path, right, on_reject="abort")
    assert failure.value.outcome.status == "aborted" and failure.value.outcome.rejected == 1
    assert "25001" in path.with_suffix(".rejections.csv").read_text(encoding="utf-8-sig")
    same_as_before()


def test_an_empty_file_is_refused(shop: Shop, right: Right, tmp_path: Path, unchanged: Unchanged) -> None:
    same_as_before = unchanged()
    for content in (b"", b"\n\r\n   \n", b"\xef\xbb\xbf\r\n"):
        with shop.bound(), pytest.raises(FileFormatError, match="empty"):
            run(write_file(tmp_path, "empty.txt", content), right)
    same_as_before()


def test_a_file_that_is_not_text_is_refused(
    shop: Shop, right: Right, tmp_path: Path, unchanged: Unchanged
) -> None:
    same_as_before = unchanged()
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    binary = b"some\x00binary\x00garbage" * 100
    zip_not_xlsx = b"PK\x03\x04" + b"\x00" * 100
    for name, content in (("a.png", png), ("b.bin", binary), ("c.zip", zip_not_xlsx)):
        with shop.bound(), pytest.raises(FileFormatError):
            run(write_file(tmp_path, name, content), right)
    same_as_before()


def test_a_10_mb_single_line_is_one_rejected_row_not_10_mb_of_memory(
    shop: Shop, right: Right, tmp_path: Path, unchanged: Unchanged
) -> None:
    path = write_file(tmp_path, "one-line.txt", "A" * (10 * 1024 * 1024))
    same_as_before = unchanged()
    with shop.bound(), pytest.raises(ImportFailed) as failure:
        run(path, right)
    assert failure.value.outcome.counts()["rejected"] == 1
    assert "longer than" in path.with_suffix(".rejections.csv").read_text(encoding="utf-8-sig")
    same_as_before()


def test_a_10_mb_line_among_good_ones_is_skipped(shop: Shop, right: Right, tmp_path: Path) -> None:
    good = key_lines(3)
    path = write_file(tmp_path, "mixed.txt", "\n".join([good[0], "B" * (10 * 1024 * 1024), *good[1:]]))
    with shop.bound():
        outcome = run(path, right)
    assert (outcome.imported, outcome.rejected) == (3, 1)


def xlsx_with_sheets(tmp_path: Path) -> Path:
    workbook = Workbook()
    notes = workbook.active
    notes.title = "说明"
    notes.append(["本文件由供应商生成"])
    keys = workbook.create_sheet("卡密")
    keys.append(["卡号", "卡密", "有效期"])
    for n in range(12):
        keys.append([6212260000000000 + n, f"PW{n:06d}", "2099-06-30"])
    workbook.create_sheet("空表")
    path = tmp_path / "keys.xlsx"
    workbook.save(path)
    return path


def test_an_xlsx_with_several_sheets_reads_the_chosen_sheet(shop: Shop, right: Right, tmp_path: Path) -> None:
    path = xlsx_with_sheets(tmp_path)
    with shop.bound():
        detection = inventory.fileformats.detect(path)
        outcome = run(path, right, sheet="卡密")
        masks = sorted(k.mask for k in card_keys_of(right))
    assert detection.sheets == ["说明", "卡密", "空表"]
    assert outcome.imported == 12
    assert masks[0] == "6212••••••0000"  # a number cell reads as the card number, not 6.21e15


def test_an_xlsx_first_sheet_without_keys_is_refused_whole(
    shop: Shop, right: Right, tmp_path: Path, unchanged: Unchanged
) -> None:
    path = xlsx_with_sheets(tmp_path)
    same_as_before = unchanged()
    with shop.bound(), pytest.raises((FileFormatError, ImportFailed)):
        run(path, right, sheet="空表")
    same_as_before()


def test_expired_rows_and_unreadable_dates_are_rejected(shop: Shop, right: Right, tmp_path: Path) -> None:
    path = write_file(
        tmp_path, "dates.csv", "card,secret,expires\nC1,S1,2099-01-01\nC2,S2,2001-01-01\nC3,S3,soon\n"
    )
    with shop.bound():
        outcome = run(path, right)
    assert (outcome.imported, outcome.rejected) == (1, 2)
    assert path.with_suffix(".rejections.csv").read_text(encoding="utf-8-sig").splitlines()[1:] == [
        "3,already expired",
        "4,unreadable expiry date",
    ]


def test_the_operator_can_override_encoding_and_mapping(shop: Shop, right: Right, tmp_path: Path) -> None:
    path = write_file(tmp_path, "swapped.csv", "secret,card\nS1,C1\nS2,C2\n")
    with shop.bound():
        outcome = run(path, right, encoding="utf-8", mapping="card=2,secret=1")
        revealed = sorted(inventory.reveal_key(k) for k in card_keys_of(right))
    assert outcome.imported == 2 and revealed == ["C1 S1", "C2 S2"]


def test_a_killed_import_leaves_no_partial_batch(
    shop: Shop, right: Right, tmp_path: Path, unchanged: Unchanged
) -> None:
    path = write_file(tmp_path, "k.txt", "\n".join(key_lines(30_000)))
    same_as_before = unchanged()

    def die_halfway(percent: float, message: str) -> None:
        if "20,000 rows" in message:
            raise KeyboardInterrupt("killed")

    with shop.bound(), pytest.raises(KeyboardInterrupt):
        inventory.import_local_file(
            path, right_id=right.id, supplier="x", unit_cost="1", progress=die_halfway
        )
    same_as_before()


def test_a_stream_upload_keeps_the_file_checksum(shop: Shop, right: Right) -> None:
    with shop.bound():
        upload = inventory.start_upload(
            io.BytesIO(b"K1\nK2\n"), "k.txt", right_id=right.id, supplier="s", unit_cost="1.00"
        )
    import hashlib

    assert upload.checksum == hashlib.sha256(b"K1\nK2\n").hexdigest()
