"""The risk-control hook: checks that may hold a channel order before it is created (blocklists come later).

A check takes the channel and the paid-order event and returns a reason to hold it, or None. Risk control
(a later issue) registers its checks with `register_check`; until then nothing is held here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from integrations.adapters.base import OrderPaid
    from integrations.models import Channel

RiskCheck = Callable[["Channel", "OrderPaid"], "str | None"]
CHECKS: list[RiskCheck] = []


def register_check(check: RiskCheck) -> RiskCheck:
    """Add a check run on every channel order before it is created (e.g. a customer blocklist)."""
    if check not in CHECKS:
        CHECKS.append(check)
    return check


def hold_reason(channel: Channel, event: OrderPaid) -> str | None:
    """Return why this order must wait for a person, or None to go ahead."""
    for check in CHECKS:
        reason = check(channel, event)
        if reason:
            return reason
    return None
