"""Back-office pages of reconciliation (对账): runs, their files, settlement matching and differences.

Finance data: every page needs `reports.export` (owners, admins, finance; not analysts). Thin: parse,
call a service, render.
"""

from __future__ import annotations

import io
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required

from reports.reconciliation import services, settlement
from reports.reconciliation.forms import MappingForm, ResolveForm, RunForm, SettlementUploadForm
from reports.reconciliation.models import (
    MATCH_KINDS,
    ReconciliationFile,
    ReconciliationRun,
    Settlement,
    SettlementMatch,
)
from reports.reconciliation.services import ReconciliationError, RunRequest
from reports.reconciliation.settlement import SettlementError
from saas.timeutil import utcnow
from saas.uploads import read_capped
from tenants import roles
from tenants.context import current_tenant, requires
from tenants.jobruns import live_status
from tenants.lookup import find, get_or_404
from tenants.models import JobRun

bp = Blueprint("reconciliation", __name__, url_prefix="/t/<tenant_slug>/reconciliation")
MIME_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def _job_status(job_run_id: int | None) -> dict[str, object] | None:
    if job_run_id is None:
        return None
    job = find(JobRun, job_run_id)
    return None if job is None else live_status(job)


# ---------------------------------------------------------------- runs


def _render_runs(form: RunForm) -> str:
    return render_template(
        "reports/reconciliation/runs.html",
        runs=services.list_runs(),
        form=form,
        channels=services.known_channels(),
    )


@bp.route("/")
@login_required
@requires(roles.REPORTS_EXPORT)
def runs() -> ResponseReturnValue:
    form = RunForm(formdata=None)
    form.month.data = services.previous_month(utcnow(), current_tenant().time_zone).label
    return _render_runs(form)


def _period_from(form: RunForm) -> services.Period:
    zone = current_tenant().time_zone
    if form.period_kind.data == "range":
        if form.starts_on.data is None or form.ends_on.data is None:
            raise ReconciliationError(_("Choose the first and the last day."))
        return services.range_period(form.starts_on.data, form.ends_on.data, zone)
    return services.parse_month(form.month.data or "", zone)


@bp.route("/runs", methods=["POST"])
@login_required
@requires(roles.REPORTS_EXPORT)
def create_run() -> ResponseReturnValue:
    form = RunForm()
    if not form.validate():
        return _render_runs(form), 400
    try:
        period = _period_from(form)
        run = services.create_run(
            RunRequest(period, (form.channel.data or "").strip() or None, tuple(form.formats.data or ())),
            created_by_id=current_user.id,
        )
    except ReconciliationError as error:
        flash(str(error), "error")
        return _render_runs(form), 400
    return redirect(url_for("reconciliation.run", reconciliation_run_id=run.id))


@bp.route("/runs/<int:reconciliation_run_id>")
@login_required
@requires(roles.REPORTS_EXPORT)
def run(reconciliation_run_id: int) -> ResponseReturnValue:
    found = get_or_404(ReconciliationRun, reconciliation_run_id)
    return render_template(
        "reports/reconciliation/run.html",
        run=found,
        files=services.files_of(found.id),
        settlements=settlement.settlements_of(found.id),
        job=_job_status(found.job_run_id),
        upload_form=SettlementUploadForm(formdata=None),
    )


@bp.route("/runs/<int:reconciliation_run_id>/files/<int:reconciliation_file_id>")
@login_required
@requires(roles.REPORTS_EXPORT)
def download(reconciliation_run_id: int, reconciliation_file_id: int) -> ResponseReturnValue:
    get_or_404(ReconciliationRun, reconciliation_run_id)
    found = get_or_404(ReconciliationFile, reconciliation_file_id, run_id=reconciliation_run_id)
    path = Path(current_app.config["FILES_DIR"]) / found.path
    if not path.is_file():
        abort(404)
    services.record_download(found)
    return send_file(
        path, mimetype=MIME_TYPES.get(found.format), as_attachment=True, download_name=found.filename
    )


# ---------------------------------------------------------------- settlements


@bp.route("/runs/<int:reconciliation_run_id>/settlements", methods=["POST"])
@login_required
@requires(roles.REPORTS_EXPORT)
def upload_settlement(reconciliation_run_id: int) -> ResponseReturnValue:
    found = get_or_404(ReconciliationRun, reconciliation_run_id)
    form = SettlementUploadForm()
    if not form.validate():
        flash(_("Choose a CSV file to upload."), "error")
        return redirect(url_for("reconciliation.run", reconciliation_run_id=found.id))
    try:
        uploaded = settlement.upload_settlement(
            found,
            io.BytesIO(read_capped(form.file.data.stream, "settlement_csv")),
            form.file.data.filename or "",
            channel=form.channel.data,
            encoding=form.encoding.data or None,
        )
    except SettlementError as error:
        flash(str(error), "error")
        return redirect(url_for("reconciliation.run", reconciliation_run_id=found.id))
    return redirect(
        url_for("reconciliation.settlement", reconciliation_run_id=found.id, settlement_id=uploaded.id)
    )


def _mapping_form(found: Settlement, formdata: object = None) -> MappingForm:
    form = MappingForm(formdata=formdata) if formdata is not None else MappingForm(formdata=None)
    width = max([len(found.header), *(len(r) for r in found.sample)])
    choices = [("", _("— none —"))] + [
        (str(i), f"{i + 1}: {found.header[i] if i < len(found.header) else ''}") for i in range(width)
    ]
    for role in settlement.ROLES:
        getattr(form, role).choices = choices
        if formdata is None:
            index = found.mapping.get(role)
            getattr(form, role).data = "" if index is None else str(index)
    if formdata is None:
        form.has_header.data = found.has_header
    return form


@bp.route("/runs/<int:reconciliation_run_id>/settlements/<int:settlement_id>", endpoint="settlement")
@login_required
@requires(roles.REPORTS_EXPORT)
def settlement_page(reconciliation_run_id: int, settlement_id: int) -> ResponseReturnValue:
    found_run = get_or_404(ReconciliationRun, reconciliation_run_id)
    found = get_or_404(Settlement, settlement_id, run_id=reconciliation_run_id)
    kind = request.args.get("kind") or None
    return render_template(
        "reports/reconciliation/settlement.html",
        run=found_run,
        settlement=found,
        form=_mapping_form(found),
        resolve_form=ResolveForm(formdata=None),
        kind=kind if kind in MATCH_KINDS else None,
        kinds=MATCH_KINDS,
        differences=settlement.differences_of(found.id, kind) if found.status == "matched" else [],
        open_count=settlement.open_difference_count(found.id),
        job=_job_status(found.job_run_id),
    )


@bp.route("/runs/<int:reconciliation_run_id>/settlements/<int:settlement_id>/mapping", methods=["POST"])
@login_required
@requires(roles.REPORTS_EXPORT)
def map_settlement(reconciliation_run_id: int, settlement_id: int) -> ResponseReturnValue:
    get_or_404(ReconciliationRun, reconciliation_run_id)
    found = get_or_404(Settlement, settlement_id, run_id=reconciliation_run_id)
    form = _mapping_form(found, request.form)
    back = url_for(
        "reconciliation.settlement", reconciliation_run_id=reconciliation_run_id, settlement_id=found.id
    )
    if not form.validate():
        flash(_("Choose the columns again."), "error")
        return redirect(back)
    mapping = {
        role: (int(getattr(form, role).data) if getattr(form, role).data not in (None, "") else None)
        for role in settlement.ROLES
    }
    try:
        settlement.choose_mapping(found, mapping, bool(form.has_header.data))
    except SettlementError as error:
        flash(str(error), "error")
    return redirect(back)


@bp.route(
    "/runs/<int:reconciliation_run_id>/settlements/<int:settlement_id>/differences/<int:settlement_match_id>/resolve",
    methods=["POST"],
)
@login_required
@requires(roles.REPORTS_EXPORT)
def resolve(reconciliation_run_id: int, settlement_id: int, settlement_match_id: int) -> ResponseReturnValue:
    get_or_404(ReconciliationRun, reconciliation_run_id)
    found = get_or_404(Settlement, settlement_id, run_id=reconciliation_run_id)
    match = get_or_404(SettlementMatch, settlement_match_id, settlement_id=found.id)
    form = ResolveForm()
    back = url_for(
        "reconciliation.settlement", reconciliation_run_id=reconciliation_run_id, settlement_id=found.id
    )
    if not form.validate():
        flash(_("Say how the difference was resolved."), "error")
        return redirect(back)
    try:
        settlement.resolve_difference(match, form.note.data or "")
        flash(_("Marked resolved."), "success")
    except SettlementError as error:
        flash(str(error), "error")
    return redirect(back)
