"""Channel adapters by slug: Shopify, WooCommerce, Stripe, WeChat Pay, Alipay, Youzan, ours, CSV."""

from __future__ import annotations

from integrations.adapters.alipay import AlipayAdapter
from integrations.adapters.base import ChannelAdapter
from integrations.adapters.generic import CsvAdapter, GenericAdapter
from integrations.adapters.shopify import ShopifyAdapter
from integrations.adapters.stripe import StripeAdapter
from integrations.adapters.wechatpay import WeChatPayAdapter
from integrations.adapters.woocommerce import WooCommerceAdapter
from integrations.adapters.youzan import YouzanAdapter

ADAPTERS: dict[str, ChannelAdapter] = {}


def register(adapter: ChannelAdapter) -> ChannelAdapter:
    """Make an adapter available under its slug."""
    ADAPTERS[adapter.slug] = adapter
    return adapter


for _adapter in (
    ShopifyAdapter(),
    WooCommerceAdapter(),
    StripeAdapter(),
    WeChatPayAdapter(),
    AlipayAdapter(),
    YouzanAdapter(),
    GenericAdapter(),
    CsvAdapter(),
):
    register(_adapter)


def adapter_for(slug: str) -> ChannelAdapter:
    """Return the adapter registered under `slug` (KeyError for an unknown one)."""
    return ADAPTERS[slug]


def channel_kinds() -> list[tuple[str, str]]:
    """Return (slug, label) of every adapter, for the form that connects a channel."""
    return [(slug, str(adapter.label)) for slug, adapter in ADAPTERS.items()]
