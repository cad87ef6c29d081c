"""Partner campaigns (B2B codes, 兑换码): partners, campaigns, codes exported once or issued by API, claims.

Sits between `integrations` and `orders`: a claim is an order (`orders.services.create_order`) fulfilled
like any other; nothing inside `orders` or below imports this package.
"""

from __future__ import annotations

from flask import Flask

from campaigns import api, claim_page, demo, views
from tenants.demo import register_demo_step


def init_app(app: Flask) -> None:
    """Register the back office, the claim page, the partner API, the demo step and the guess limit."""
    # Unknown codes a caller (address or phone) may try before it is refused until the window ends.
    app.config.setdefault("CAMPAIGN_GUESS_LIMIT", "10 per hour")
    if "campaigns" not in app.blueprints:
        app.register_blueprint(views.bp)
        app.register_blueprint(claim_page.bp)
        app.register_blueprint(api.bp)
    register_demo_step(app, demo.add_demo_campaigns)
