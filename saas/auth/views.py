"""Log in, log out, password reset and the account page."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from saas.auth import services
from saas.auth.forms import (
    ChangePasswordForm,
    ForgotPasswordForm,
    LoginForm,
    PreferencesForm,
    ResetPasswordForm,
)
from saas.extensions import db

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only follow a `next` that stays on this site."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(form.email.data or "", form.password.data or "")
        if user is None:
            flash(_("Wrong email or password."), "error")
        else:
            session.clear()  # a fresh session on login: no fixation
            login_user(user, remember=bool(form.remember.data))
            return redirect(_safe_next(request.args.get("next")) or url_for("tenants.home"))
    return render_template("saas/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password() -> ResponseReturnValue:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data or "")
        flash(_("If an account uses that email, a reset link is on its way."), "info")
        return redirect(url_for("auth.login"))
    return render_template("saas/forgot_password.html", form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> ResponseReturnValue:
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            services.reset_password(token, form.password.data or "")
        except services.AccountError as error:
            flash(str(error), "error")
        else:
            flash(_("Your password is changed; log in with it."), "info")
            return redirect(url_for("auth.login"))
    return render_template("saas/reset_password.html", form=form)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> ResponseReturnValue:
    prefs = PreferencesForm(prefix="prefs", obj=current_user, locale=current_user.locale or "")
    password = ChangePasswordForm(prefix="pw")
    if request.method == "POST" and "prefs-name" in request.form and prefs.validate():
        current_user.name = prefs.name.data
        services.set_locale(current_user, prefs.locale.data or None)
        db.session.commit()
        flash(_("Preferences saved."), "info")
        return redirect(url_for("auth.account"))
    if request.method == "POST" and "pw-password" in request.form and password.validate():
        try:
            services.change_password(
                current_user, password.current_password.data or "", password.password.data or ""
            )
        except services.AccountError as error:
            flash(str(error), "error")
        else:
            login_user(current_user._get_current_object())  # keep this session; every other one is now stale
            flash(_("Password changed. Other sessions were signed out."), "info")
            return redirect(url_for("auth.account"))
    return render_template("saas/account.html", prefs=prefs, password=password)
