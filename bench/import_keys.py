"""Benchmark: import N generated card keys through the product's import path, against a raw COPY.

    export BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/quanyi_bench
    .venv/bin/python bench/import_keys.py --rows 1000000

1. Writes a CSV of N card keys (card number + secret, header row) to bench/out/ (streamed).
2. ours: imports it into PostgreSQL with `catalog.inventory.import_local_file` — parse, check, hash,
   encrypt, dedupe, one atomic transaction — the same code the UI, the API and the CLI use.
3. reference: loads the same number of already-encrypted rows into the same (emptied) `card_keys` table
   with one raw binary COPY (the physical floor: no parsing, hashing, encryption or dedupe).
4. sqlite: the same file through the product path into a SQLite file.

The database named by BENCH_DATABASE_URL is created if missing and its tables are recreated: point it at
a database of its own. Goal: ours ≤ 2 × reference, peak RSS ≤ 300 MB. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchkit import OUT, ROOT, ensure_postgres_database, make_app, peak_rss_mb
from benchkit import fresh_schema as fresh_postgres_schema

sys.path.insert(0, str(ROOT))

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def write_key_file(rows: int) -> Path:
    """Write (or reuse) a CSV of `rows` distinct card keys with a header row."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"keys-{rows}.csv"
    if path.exists():
        return path
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("card_number,secret\n")
        prefix = secrets.token_hex(3).upper()
        for n in range(rows):
            secret = "".join(secrets.choice(alphabet) for _ in range(16))
            out.write(f"{prefix}{n:013d},{secret}\n")
    return path


def tenant_with_right() -> tuple[int, int]:
    """Create a tenant with a card-key right; return (tenant id, right id)."""
    from catalog import services
    from saas.extensions import db
    from tenants.models import Tenant
    from tenants.scoping import tenant_bound

    tenant = Tenant(slug="bench", name="Bench Shop")
    db.session.add(tenant)
    db.session.commit()
    with tenant_bound(tenant.id):
        right = services.create_right({"name": "腾讯视频VIP月卡", "kind": "card_key", "unit_cost": 1250})
        return tenant.id, right.id


def run_ours(path: Path, tenant_id: int, right_id: int) -> tuple[float, Any]:
    """Import the file through the product path; return seconds and the outcome."""
    from catalog import inventory
    from tenants.scoping import tenant_bound

    last = [-10]

    def progress(percent: float, message: str) -> None:
        if percent - last[0] >= 10:
            last[0] = int(percent)
            print(f"    {int(percent):3d}% {message}", file=sys.stderr)

    with tenant_bound(tenant_id):
        started = time.perf_counter()
        outcome = inventory.import_local_file(
            path,
            right_id=right_id,
            supplier="bench supplier",
            unit_cost="12.50",
            progress=progress,
            imported_by="bench",
        )
        return time.perf_counter() - started, outcome


# ---------------------------------------------------------------- the physical reference


def _field(value: bytes | None) -> bytes:
    return struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value


def _binary_rows(rows: int, tenant_id: int, right_id: int, batch_id: int) -> Iterator[bytes]:
    """Yield PostgreSQL binary COPY tuples of already-encrypted keys (the reference's input)."""
    from catalog import keyring
    from catalog.fileformats import KeyRow, mask
    from saas.ids import new_id
    from tenants.scoping import tenant_bound

    with tenant_bound(tenant_id):
        cipher = keyring.cipher_for(right_id)
    now = struct.pack("!q", int((dt.datetime.now(dt.UTC) - PG_EPOCH).total_seconds() * 1_000_000))
    fixed = (
        _field(struct.pack("!q", tenant_id)),
        _field(struct.pack("!q", right_id)),
        _field(struct.pack("!q", batch_id)),
        _field(b"available"),
    )
    one = _field(struct.pack("!i", 1))
    zero = _field(struct.pack("!i", 0))
    for n in range(rows):
        card, secret = f"REF{n:013d}", secrets.token_hex(8).upper()
        row = KeyRow(n, card, secret, None)
        yield b"".join(
            (
                struct.pack("!h", 12),
                _field(struct.pack("!q", new_id())),
                *fixed,
                _field(cipher.lookup_hash(card.encode())),
                _field(cipher.encrypt(row.payload())),
                _field(mask(card).encode()),
                _field(None),
                one,
                zero,
                _field(now),
            )
        )


def write_reference_file(rows: int, tenant_id: int, right_id: int, batch_id: int) -> Path:
    """Write the reference rows as one binary COPY stream on disk (prepared before the clock starts)."""
    path = OUT / f"reference-{rows}.pgcopy"
    with path.open("wb") as out:
        out.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0))
        for tuple_bytes in _binary_rows(rows, tenant_id, right_id, batch_id):
            out.write(tuple_bytes)
        out.write(struct.pack("!h", -1))
    return path


def run_reference(path: Path) -> float:
    """COPY the prepared encrypted rows into card_keys in one transaction, as the owner; return seconds.

    COPY cannot load a table under row-level security, so the reference runs as the database owner
    (a superuser bypasses RLS): it is the physical floor, not something the app could do.
    """
    from saas.extensions import db

    columns = (
        "id, tenant_id, right_id, batch_id, status, code_hash, ciphertext, mask, expires_at,"
        " max_deliveries, delivery_count, created_at"
    )
    raw = db.engine.raw_connection()
    try:
        started = time.perf_counter()
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY card_keys ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
            path.open("rb") as source,
        ):
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def empty_card_keys() -> None:
    """Empty the key table and settle the server, so both runs start from the same state (as the owner)."""
    import sqlalchemy as sa

    from saas.extensions import db

    db.session.remove()
    with db.engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE card_keys CASCADE"))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("CHECKPOINT"))


def reference_batch(tenant_id: int, right_id: int) -> int:
    from catalog.models import CardKeyBatch
    from saas.extensions import db
    from tenants.scoping import tenant_bound

    with tenant_bound(tenant_id):
        batch = CardKeyBatch(right_id=right_id, supplier="reference", unit_cost=1250, currency="CNY")
        db.session.add(batch)
        db.session.commit()
        return int(batch.id)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="how many card keys (default 1,000,000)")
    parser.add_argument("--skip-sqlite", action="store_true", help="do not measure SQLite")
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL")
    if not database_url or not database_url.startswith("postgres"):
        parser.error("set BENCH_DATABASE_URL to a PostgreSQL database of its own")

    path = write_key_file(args.rows)
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB, {args.rows:,} keys)")
    ensure_postgres_database(database_url)
    app_url = fresh_postgres_schema(database_url)
    from saas.extensions import db

    with make_app(app_url).app_context():
        tenant_id, right_id = tenant_with_right()
        ours, outcome = run_ours(path, tenant_id, right_id)
        rss = peak_rss_mb()
        print(
            f"ours (PostgreSQL as the app role under row-level security, product path): {ours:.2f} s, "
            f"{outcome.imported:,} imported ({args.rows / ours:,.0f} keys/s), peak RSS {rss} MB"
        )
        assert outcome.imported == args.rows, outcome.counts()
        batch_id = reference_batch(tenant_id, right_id)
        reference_file = write_reference_file(args.rows, tenant_id, right_id, batch_id)
        db.session.remove()
        db.engine.dispose()
    with make_app(database_url).app_context():
        empty_card_keys()
        reference = run_reference(reference_file)
        print(
            f"reference (PostgreSQL, raw binary COPY of encrypted rows as the owner): {reference:.2f} s "
            f"({args.rows / reference:,.0f} rows/s)"
        )
        reference_file.unlink()
        db.session.remove()
        db.engine.dispose()
    if not args.skip_sqlite:
        sqlite_path = OUT / "bench.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
        sqlite_app = make_app(f"sqlite:///{sqlite_path}")
        with sqlite_app.app_context():
            db.create_all()
            tenant_id, right_id = tenant_with_right()
            seconds, outcome = run_ours(path, tenant_id, right_id)
            print(
                f"sqlite (product path): {seconds:.2f} s, {outcome.imported:,} imported "
                f"({args.rows / seconds:,.0f} keys/s)"
            )
    print(f"import_keys: ours={ours:.2f} reference={reference:.2f} ratio={ours / reference:.2f} rss_mb={rss}")


if __name__ == "__main__":
    main()
