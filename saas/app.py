"""The application factory: the one place that knows every package."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from saas import bounds, errors, i18n, jobs, mail, periodic, security, sms
from saas.config import load_config
from saas.extensions import csrf, db, login_manager, migrate, retry_reads_that_write

PACKAGE_DIR = Path(__file__).resolve().parent
# Templates, static files and the Alembic scripts live inside the package, so an installed wheel finds them
# wherever it is installed and whatever the working directory.
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Create the Quanyi app. Mode from `QUANYI_ENV` (development, testing, production)."""
    app = Flask(
        "quanyi",
        # `./instance` of the working directory (the checkout for `make run`), not of the install folder.
        instance_path=os.environ.get("QUANYI_INSTANCE_PATH") or str(Path.cwd() / "instance"),
        template_folder=str(TEMPLATES_DIR),
        static_folder=str(STATIC_DIR),
    )
    mode = (config or {}).get("ENV_NAME") or os.environ.get("QUANYI_ENV", "development")
    app.config.update(load_config(mode, Path(app.instance_path), config))
    bounds.init_app(app)  # first: the bounded `int` converter must exist before any route is added

    db.init_app(app)
    retry_reads_that_write(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    login_manager.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    jobs.init_app(app)
    mail.init_app(app)
    sms.init_app(app)
    periodic.init_app(app)
    security.init_app(app)

    from saas import auth, cli, layout

    auth.init_app(app)
    layout.init_app(app)
    cli.init_app(app)

    import campaigns
    import catalog
    import integrations
    import orders
    import reports
    import tenants

    for package in (tenants, catalog, orders, campaigns, integrations, reports):
        package.init_app(app)
    security.trust_proxies(app)  # last: the outermost middleware
    return app
