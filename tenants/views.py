"""Back-office views of the tenant shell: switcher, sign-up, home, team, API keys, audit, settings, jobs."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user
from sqlalchemy import select

from saas import sms
from saas.extensions import db
from tenants import roles, services
from tenants.checklist import checklist_status
from tenants.context import can, current_role, current_tenant, requires
from tenants.forms import (
    AcceptInvitationForm,
    ApiKeyForm,
    InviteForm,
    ReasonForm,
    RoleForm,
    SettingsForm,
    SignUpForm,
    SmsSettingsForm,
)
from tenants.jobruns import live_status, retry_job_run
from tenants.lookup import get_or_404
from tenants.models import ApiKey, AuditEvent, Invitation, JobRun, Membership

bp = Blueprint("tenants", __name__)
tenant_bp = Blueprint("tenant", __name__, url_prefix="/t/<tenant_slug>")


# ---------------------------------------------------------------- outside any tenant


@bp.route("/")
def home() -> ResponseReturnValue:
    """Send a signed-in user to their tenant, or show the switcher when they have several."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    memberships = services.tenants_of(current_user)
    if len(memberships) == 1:
        return redirect(url_for("tenant.dashboard", tenant_slug=memberships[0][0].slug))
    return render_template("tenants/switcher.html", memberships=memberships)


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> ResponseReturnValue:
    form = SignUpForm()
    if current_user.is_authenticated:
        form.email.data = form.email.data or current_user.email
    if form.validate_on_submit():
        try:
            tenant, user = services.sign_up(
                form.tenant_name.data or "",
                form.slug.data or "",
                form.email.data or "",
                form.name.data or "",
                form.password.data or "",
                existing_user=current_user._get_current_object() if current_user.is_authenticated else None,
            )
        except (services.TenantError, ValueError) as error:
            flash(str(error), "error")
        else:
            login_user(user)
            flash(_("Welcome to Quanyi! Your back office is ready."), "info")
            return redirect(url_for("tenant.dashboard", tenant_slug=tenant.slug))
    return render_template("tenants/signup.html", form=form)


@bp.route("/invitations/<token>", methods=["GET", "POST"])
def accept_invitation(token: str) -> ResponseReturnValue:
    try:
        tenant, invitation = services.open_invitation(token)
    except services.TenantError as error:
        return render_template("tenants/invitation.html", error=str(error), form=None), 410
    form = AcceptInvitationForm()
    signed_in = current_user._get_current_object() if current_user.is_authenticated else None
    if request.method == "POST" and (signed_in is not None or form.validate()):
        try:
            tenant, user = services.accept_invitation(
                token, signed_in, form.name.data or "", form.password.data or ""
            )
        except (services.TenantError, ValueError) as error:
            flash(str(error), "error")
        else:
            login_user(user)
            flash(_("You joined %(tenant)s.", tenant=tenant.name), "info")
            return redirect(url_for("tenant.dashboard", tenant_slug=tenant.slug))
    return render_template(
        "tenants/invitation.html", tenant=tenant, invitation=invitation, form=form, error=None
    )


# ---------------------------------------------------------------- inside a tenant


@tenant_bp.route("/")
@login_required
@requires(roles.TENANT_VIEW)
def dashboard() -> ResponseReturnValue:
    return render_template("tenants/dashboard.html", checklist=checklist_status())


@tenant_bp.route("/team")
@login_required
@requires(roles.TEAM_VIEW)
def team() -> ResponseReturnValue:
    tenant = current_tenant()
    return render_template(
        "tenants/team.html",
        members=services.members_of(tenant),
        invitations=services.pending_invitations()
        if roles.has_permission(current_role(), roles.TEAM_MANAGE)
        else [],
        invite_form=InviteForm(),
        role_form=RoleForm(),
        assignable=roles.roles_assignable_by(current_role()),
    )


@tenant_bp.route("/team/invite", methods=["POST"])
@login_required
@requires(roles.TEAM_MANAGE)
def invite() -> ResponseReturnValue:
    form = InviteForm()
    if form.validate_on_submit():
        try:
            services.invite(current_tenant(), current_role(), form.email.data or "", form.role.data or "")
        except services.TenantError as error:
            flash(str(error), "error")
        else:
            flash(_("Invitation sent to %(email)s.", email=form.email.data), "info")
    else:
        flash(_("Check the email address."), "error")
    return redirect(url_for("tenant.team"))


@tenant_bp.route("/team/invitations/<int:invitation_id>/revoke", methods=["POST"])
@login_required
@requires(roles.TEAM_MANAGE)
def revoke_invitation(invitation_id: int) -> ResponseReturnValue:
    invitation = get_or_404(Invitation, invitation_id)
    services.revoke_invitation(invitation)
    flash(_("Invitation revoked."), "info")
    return redirect(url_for("tenant.team"))


@tenant_bp.route("/team/<int:user_id>/role", methods=["POST"])
@login_required
@requires(roles.TEAM_MANAGE)
def change_role(user_id: int) -> ResponseReturnValue:
    get_or_404(Membership, user_id)
    form = RoleForm()
    try:
        services.change_role(
            current_tenant(), current_role(), user_id, form.role.data or "", form.reason.data
        )
    except services.TenantError as error:
        flash(str(error), "error")
    else:
        flash(_("Role changed."), "info")
    return redirect(url_for("tenant.team"))


@tenant_bp.route("/team/<int:user_id>/remove", methods=["POST"])
@login_required
@requires(roles.TEAM_MANAGE)
def remove_member(user_id: int) -> ResponseReturnValue:
    get_or_404(Membership, user_id)
    form = ReasonForm()
    try:
        services.remove_member(current_tenant(), current_role(), user_id, form.reason.data)
    except services.TenantError as error:
        flash(str(error), "error")
    else:
        flash(_("Member removed."), "info")
    return redirect(url_for("tenant.team"))


@tenant_bp.route("/api-keys", methods=["GET", "POST"])
@login_required
@requires(roles.API_KEYS_MANAGE)
def api_keys() -> ResponseReturnValue:
    form = ApiKeyForm()
    form.scopes.choices = [(name, name) for name in roles.permissions_of(current_role())]
    new_secret = None
    if form.validate_on_submit():
        try:
            _key, new_secret = services.create_api_key(
                current_role(), form.name.data or "", form.scopes.data or []
            )
        except services.TenantError as error:
            flash(str(error), "error")
    return render_template(
        "tenants/api_keys.html", form=form, keys=services.list_api_keys(), new_secret=new_secret
    )


@tenant_bp.route("/api-keys/<int:key_id>/revoke", methods=["POST"])
@login_required
@requires(roles.API_KEYS_MANAGE)
def revoke_api_key(key_id: int) -> ResponseReturnValue:
    key = get_or_404(ApiKey, key_id)
    services.revoke_api_key(key)
    flash(_("API key revoked."), "info")
    return redirect(url_for("tenant.api_keys"))


@tenant_bp.route("/audit")
@login_required
@requires(roles.AUDIT_VIEW)
def audit_log() -> ResponseReturnValue:
    statement = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    action = request.args.get("action", "").strip()
    actor = request.args.get("actor", "").strip()
    object_id = request.args.get("object_id", "").strip()
    if action:
        statement = statement.where(AuditEvent.action.startswith(action))
    if actor:
        statement = statement.where(AuditEvent.actor.contains(actor))
    if object_id:
        statement = statement.where(AuditEvent.object_id == object_id)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    events = db.paginate(statement, page=page, per_page=50, error_out=False)
    return render_template(
        "tenants/audit.html", events=events, action=action, actor=actor, object_id=object_id
    )


@tenant_bp.route("/settings", methods=["GET", "POST"])
@login_required
@requires(roles.SETTINGS_MANAGE)
def settings() -> ResponseReturnValue:
    tenant = current_tenant()
    form = SettingsForm(obj=tenant)
    if request.method == "GET":
        form.require_owner_two_factor.data = bool((tenant.settings or {}).get("require_owner_two_factor"))
    if form.validate_on_submit():
        try:
            services.update_settings(
                tenant,
                form.name.data or "",
                form.time_zone.data or "",
                form.locale.data or "",
                (form.currency.data or "").upper(),
                bool(form.require_owner_two_factor.data),
            )
        except services.TenantError as error:
            flash(str(error), "error")
        else:
            flash(_("Settings saved."), "info")
            return redirect(url_for("tenant.settings"))
    return render_template("tenants/settings.html", form=form)


@tenant_bp.route("/settings/sms", methods=["GET", "POST"])
@login_required
@requires(roles.SETTINGS_MANAGE)
def sms_settings() -> ResponseReturnValue:
    """Set the SMS 签名, the template code of each kind (its variables beside it) and the channel choice."""
    tenant = current_tenant()
    current = sms.SmsSettings.of(tenant.settings)
    form = SmsSettingsForm(
        data={"sign_name": current.sign_name, "prefer": current.prefer, **current.templates}
    )
    if form.validate_on_submit():
        templates = {kind: (getattr(form, kind).data or "").strip() for kind in sms.SMS_KINDS}
        chosen = sms.SmsSettings((form.sign_name.data or "").strip(), templates, form.prefer.data or "mail")
        services.update_sms_settings(tenant, chosen)
        flash(_("SMS settings saved."), "info")
        return redirect(url_for("tenant.sms_settings"))
    return render_template(
        "tenants/sms_settings.html",
        form=form,
        kinds=[
            (kind, sms.SMS_KIND_LABELS[kind], " ".join(f"${{{name}}}" for name in names))
            for kind, names in sms.SMS_KINDS.items()
        ],
        sms_configured=sms.sms_configured(),
        provider=(current_app.config.get("SMS_URL") or "").split(":", 1)[0],
    )


@tenant_bp.route("/jobs/<int:job_id>")
@login_required
@requires(roles.TENANT_VIEW)
def job(job_id: int) -> ResponseReturnValue:
    run = get_or_404(JobRun, job_id)
    return render_template("tenants/job.html", run=run, status=live_status(run))


@tenant_bp.route("/jobs/<int:job_id>/retry", methods=["POST"])
@login_required
@requires(roles.TENANT_VIEW)
def retry_job(job_id: int) -> ResponseReturnValue:
    run = get_or_404(JobRun, job_id)
    try:
        retry_job_run(run)
    except ValueError:
        flash(_("Only a failed job can be started again."), "error")
    else:
        flash(_("Started again."), "info")
    return redirect(url_for("tenant.job", job_id=job_id))


@tenant_bp.route("/jobs/<int:job_id>.json")
@login_required
@requires(roles.TENANT_VIEW)
def job_status(job_id: int) -> ResponseReturnValue:
    return jsonify(live_status(get_or_404(JobRun, job_id)))


def tenant_nav_permission(endpoint: str) -> str | None:
    """Return the permission an endpoint needs (for hiding navigation a role cannot use)."""
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "required_permission", None)


@tenant_bp.app_context_processor
def _inject_tenant() -> dict[str, object]:
    return {
        "tenant": g.get("tenant"),
        "membership": g.get("membership"),
        "can": can,
        "nav_permission": tenant_nav_permission,
    }
