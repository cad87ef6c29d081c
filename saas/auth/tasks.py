"""Background work of the accounts: forgetting old login attempts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, or_

from saas.auth.models import LoginAttempts
from saas.extensions import db
from saas.timeutil import utcnow

ATTEMPTS_KEPT_FOR = dt.timedelta(days=1)


def forget_stale_login_attempts() -> int:
    """Periodic: delete the attempt counts untouched for a day and not locked; return how many.

    Every address anyone types in gets a row (unknown ones too, so they lock alike): without this an
    attacker trying many addresses would grow the table without end.
    """
    now = utcnow()
    table = LoginAttempts.__table__
    result = db.session.execute(
        delete(table).where(
            table.c.updated_at < now - ATTEMPTS_KEPT_FOR,
            or_(table.c.locked_until.is_(None), table.c.locked_until <= now),
        )
    )
    db.session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
