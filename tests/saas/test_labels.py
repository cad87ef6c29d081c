"""Every code a model stores and a person reads has its label, in Chinese and English (saas/labels.py)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_babel import force_locale

from campaigns.models import (
    BILLING_BASES,
    CAMPAIGN_STATUSES,
    CLAIM_OUTCOMES,
    CODE_STATUSES,
    ISSUE_MODES,
    PARTNER_KINDS,
)
from catalog.models import BUNDLE_STATUSES, FULFILMENT_KINDS, KEY_STATUSES, PERIOD_UNITS
from integrations.models import (
    CHANNEL_STATUSES,
    ENDPOINT_STATUSES,
    INBOX_STATUSES,
    OUTBOUND_STATUSES,
    REF_KINDS,
    SPEND_CATEGORIES,
)
from orders.models import GRANT_STATUSES, ORDER_SOURCES, ORDER_STATUSES, REDEMPTION_SOURCES, REFUND_SOURCES
from orders.risk.models import BLOCK_KINDS, FLAG_KINDS, FLAG_STATUSES, RULE_KINDS
from orders.subscriptions.models import (
    CANCELLATION_KINDS,
    CANCELLATION_SOURCES,
    REASON_CODES,
    REFUND_POLICIES,
    STATUSES,
)
from reports.reconciliation.models import MATCH_KINDS, RUN_STATUSES, SETTLEMENT_STATUSES
from saas.labels import LABELS, label
from tenants.roles import Role

CODES = {
    "fulfilment_kind": FULFILMENT_KINDS,
    "bundle_status": BUNDLE_STATUSES,
    "period_unit": PERIOD_UNITS,
    "key_status": KEY_STATUSES,
    "order_status": ORDER_STATUSES,
    "order_source": ORDER_SOURCES,
    "grant_status": GRANT_STATUSES,
    "redemption_source": REDEMPTION_SOURCES,
    "refund_source": REFUND_SOURCES,
    "subscription_status": STATUSES,
    "cancellation_kind": CANCELLATION_KINDS,
    "cancellation_source": CANCELLATION_SOURCES,
    "cancellation_reason": REASON_CODES,
    "refund_policy": REFUND_POLICIES,
    "block_kind": BLOCK_KINDS,
    "risk_rule": RULE_KINDS,
    "flag_kind": FLAG_KINDS,
    "flag_status": FLAG_STATUSES,
    "channel_status": CHANNEL_STATUSES,
    "ref_kind": REF_KINDS,
    "inbox_status": INBOX_STATUSES,
    "spend_category": SPEND_CATEGORIES,
    "endpoint_status": ENDPOINT_STATUSES,
    "outbound_status": OUTBOUND_STATUSES,
    "job_status": RUN_STATUSES,
    "settlement_status": SETTLEMENT_STATUSES,
    "match_kind": MATCH_KINDS,
    "role": tuple(role.value for role in Role),
    "partner_kind": PARTNER_KINDS,
    "billing_basis": BILLING_BASES,
    "issue_mode": ISSUE_MODES,
    "campaign_status": CAMPAIGN_STATUSES,
    "campaign_code_status": CODE_STATUSES,
    "claim_outcome": CLAIM_OUTCOMES,
}


@pytest.mark.parametrize("enum", sorted(CODES))
def test_every_code_of_the_model_has_a_label_in_both_languages(app: Flask, enum: str) -> None:
    missing = sorted(set(CODES[enum]) - set(LABELS[enum]))
    assert not missing, f"add labels for {missing} to LABELS[{enum!r}] in saas/labels.py"
    for code in CODES[enum]:
        with force_locale("en"):
            english = label(enum, code)
        with force_locale("zh_CN"):
            chinese = label(enum, code)
        assert english != code, f"{enum}.{code} shows its raw code"
        assert chinese != english or english.isupper(), f"{enum}.{code} has no Chinese: {english!r}"
