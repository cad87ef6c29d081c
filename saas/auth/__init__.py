"""Authentication: users, log in and out, sessions, password reset."""

from __future__ import annotations

from flask import Flask

from saas.auth import services, views
from saas.extensions import login_manager


def init_app(app: Flask) -> None:
    """Register the auth views and the session user loader."""
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    login_manager.user_loader(services.load_session_user)
    app.register_blueprint(views.bp)
