"""Kept for `integrations.inbox` (the drain, being rewritten) until it moves into `integrations.inbound`.

New code imports `integrations.inbound.targets`.
"""

from integrations.inbound.targets import stored_secrets

__all__ = ["stored_secrets"]
