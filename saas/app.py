"""The application factory: the one place that knows every package."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from saas import errors, i18n, jobs, mail, periodic, security
from saas.config import load_config
from saas.extensions import csrf, db, login_manager, migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Create the Quanyi app. Mode from `QUANYI_ENV` (development, testing, production)."""
    app = Flask(
        "quanyi",
        instance_path=os.environ.get("QUANYI_INSTANCE_PATH", str(PROJECT_ROOT / "instance")),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "saas" / "static"),
    )
    mode = (config or {}).get("ENV_NAME") or os.environ.get("QUANYI_ENV", "development")
    app.config.update(load_config(mode, Path(app.instance_path), config))

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    jobs.init_app(app)
    mail.init_app(app)
    periodic.init_app(app)
    security.init_app(app)

    from saas import auth, cli, layout

    auth.init_app(app)
    layout.init_app(app)
    cli.init_app(app)

    import catalog
    import integrations
    import orders
    import reports
    import tenants

    for package in (tenants, catalog, orders, integrations, reports):
        package.init_app(app)
    return app
