"""Log in, log out, password reset and the account page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from saas.auth import services, two_factor
from saas.auth.forms import (
    ChangePasswordForm,
    CodeForm,
    ForgotPasswordForm,
    LoginForm,
    PreferencesForm,
    ResetPasswordForm,
)
from saas.auth.models import User
from saas.extensions import db
from saas.security import limiter

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only follow a `next` that stays on this site."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return None


def _login_rate() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _reset_rate() -> str:
    return str(current_app.config["PASSWORD_RESET_RATE_LIMIT"])


def _start_session(user: User, remember: bool, next_url: str | None) -> ResponseReturnValue:
    session.clear()  # a fresh session on login: no fixation
    login_user(user, remember=remember)
    return redirect(_safe_next(next_url) or url_for("tenants.home"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate, methods=["POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.email.data or "", form.password.data or "")
        except services.AccountLocked as error:
            flash(str(error), "error")
            return render_template("saas/login.html", form=form), 429
        if user is None:
            flash(_("Wrong email or password."), "error")
        elif user.has_two_factor:
            session.clear()
            session["pending_login"] = {
                "u": user.id,
                "v": user.session_version,
                "remember": bool(form.remember.data),
                "next": request.args.get("next"),
            }
            return redirect(url_for("auth.second_factor"))
        else:
            return _start_session(user, bool(form.remember.data), request.args.get("next"))
    return render_template("saas/login.html", form=form)


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_rate, methods=["POST"])
def second_factor() -> ResponseReturnValue:
    pending: dict[str, Any] = session.get("pending_login") or {}
    user = db.session.get(User, pending["u"]) if pending else None
    if user is None or user.session_version != pending["v"]:
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if form.validate_on_submit():
        try:
            accepted = services.check_login_code(user, form.code.data or "")
        except services.AccountLocked as error:
            flash(str(error), "error")
            return render_template("saas/second_factor.html", form=form), 429
        if accepted:
            return _start_session(user, bool(pending["remember"]), pending.get("next"))
        flash(_("That code is not right, or was already used."), "error")
    return render_template("saas/second_factor.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_reset_rate, methods=["POST"])
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
        services.save_preferences(current_user, prefs.name.data or "", prefs.locale.data or None)
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


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def two_factor_setup() -> ResponseReturnValue:
    """Turn TOTP two-factor on (scan, confirm with a code) or off (confirm with a code)."""
    user: User = current_user._get_current_object()
    form = CodeForm()
    if user.has_two_factor:
        if form.validate_on_submit():
            try:
                turned_off = services.turn_off_two_factor(user, form.code.data or "")
            except services.AccountLocked as error:
                flash(str(error), "error")
                return render_template("saas/two_factor.html", form=form, enabled=True), 429
            if turned_off:
                flash(_("Two-factor authentication is off."), "info")
                return redirect(url_for("auth.account"))
            flash(_("That code is not right, or was already used."), "error")
        return render_template("saas/two_factor.html", form=form, enabled=True)
    secret = session.get("pending_totp_secret") or two_factor.new_secret()
    session["pending_totp_secret"] = secret
    if form.validate_on_submit():
        if services.turn_on_two_factor(user, secret, form.code.data or ""):
            session.pop("pending_totp_secret", None)
            flash(_("Two-factor authentication is on. You will be asked for a code at each login."), "info")
            return redirect(url_for("auth.account"))
        flash(_("That code is not right; check the time on your phone and try again."), "error")
    return render_template(
        "saas/two_factor.html",
        form=form,
        enabled=False,
        secret=secret,
        uri=two_factor.provisioning_uri(user, secret),
    )
