"""Plain reconciliation rows for the route-wide tests (no job, no audit trail).

Nested URLs (`/runs/<run>/settlements/<settlement>/differences/<match>`) get consistent objects: each
factory builds on the newest run or settlement of the shop, so a route's variables point at one chain.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from reports.reconciliation.models import ReconciliationFile, ReconciliationRun, Settlement, SettlementMatch
from saas.extensions import db


def _newest(model: type[ReconciliationRun] | type[Settlement]) -> int | None:
    return db.session.scalar(select(model.id).order_by(model.id.desc()).limit(1))


def run_row() -> int:
    """The shop's newest run, or a finished January run made now."""
    newest = _newest(ReconciliationRun)
    if newest is not None:
        return newest
    run = ReconciliationRun(
        period_kind="month",
        period_label="2026-01",
        starts_on=dt.date(2026, 1, 1),
        ends_on=dt.date(2026, 1, 31),
        period_start=dt.datetime(2025, 12, 31, 16, tzinfo=dt.UTC),
        period_end=dt.datetime(2026, 1, 31, 16, tzinfo=dt.UTC),
        time_zone="Asia/Shanghai",
        currency="CNY",
        status="succeeded",
        created_by="fixture",
    )
    db.session.add(run)
    db.session.commit()
    return run.id


def file_row() -> int:
    """A CSV export of the newest run, on disk."""
    run_id = run_row()
    export = ReconciliationFile(run_id=run_id, format="csv", filename="fixture.csv", path="", sha256="0" * 64)
    relative = Path(str(export.tenant_id)) / "reconciliation" / str(run_id) / f"fixture-{export.id}.csv"
    target = Path(current_app.config["FILES_DIR"]) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes("\ufeff类型 Type\n".encode())
    export.path, export.size = str(relative), target.stat().st_size
    db.session.query(ReconciliationFile).filter(
        ReconciliationFile.run_id == run_id, ReconciliationFile.format == "csv"
    ).delete()
    db.session.add(export)
    db.session.commit()
    return export.id


def settlement_row() -> int:
    """A settlement file of the newest run, uploaded and not matched yet."""
    settlement = Settlement(
        run_id=run_row(),
        filename="fixture.csv",
        path="missing.csv",
        sha256="0" * 64,
        encoding="utf-8",
        header=["订单号", "金额"],
        sample=[["A-1", "19.90"]],
        mapping={"delimiter": ",", "order_id": 0, "amount": 1},
    )
    db.session.add(settlement)
    db.session.commit()
    return settlement.id


def match_row() -> int:
    """An unresolved amount mismatch in the newest settlement."""
    newest = _newest(Settlement)
    match = SettlementMatch(
        settlement_id=newest if newest is not None else settlement_row(),
        kind="amount_mismatch",
        record_type="order",
        external_id="A-1",
        ours_amount=1990,
        theirs_amount=1890,
    )
    db.session.add(match)
    db.session.commit()
    return match.id
