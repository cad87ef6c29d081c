"""Back-office pages of the catalog: rights, bundles, plans, stock, imports, keys (thin views)."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from catalog import fileformats, inventory, services, stock, uploads
from catalog.fileformats import FileFormatError
from catalog.forms import (
    BundleForm,
    BundleItemForm,
    ImportOptionsForm,
    PlanForm,
    RightForm,
    ThresholdForm,
    UploadForm,
    VoidFilterForm,
    VoidForm,
)
from catalog.models import (
    BUNDLE_STATUSES,
    FULFILMENT_KINDS,
    KEY_STATUSES,
    Bundle,
    CardKey,
    CardKeyBatch,
    Plan,
    Right,
)
from catalog.services import CatalogError
from saas import money
from saas.csvfile import MIME_TYPE, csv_document
from saas.extensions import db
from tenants import roles
from tenants.context import current_tenant, requires
from tenants.jobruns import live_status
from tenants.lookup import find, get_or_404
from tenants.models import JobRun

bp = Blueprint("catalog", __name__, url_prefix="/t/<tenant_slug>/catalog")
M = TypeVar("M")
KEYS_PER_PAGE = 50


def _upload_or_404(token: str) -> uploads.Upload:
    upload = uploads.find_upload(token)
    if upload is None:
        abort(404)
    return upload


def _user_label() -> str:
    return str(current_user.email) if current_user.is_authenticated else ""


# ---------------------------------------------------------------- rights


def _right_fields(form: RightForm) -> dict[str, Any]:
    return {
        "name": form.name.data,
        "provider": form.provider.data,
        "description": form.description.data,
        "kind": form.kind.data,
        "face_value": services.read_amount(form.face_value.data or "0", form.currency.data),
        "unit_cost": services.read_amount(form.unit_cost.data or "0", form.currency.data),
        "currency": form.currency.data,
        "validity_days": form.validity_days.data,
        "reusable": form.reusable.data,
        "max_deliveries": form.max_deliveries.data or 1,
        "code_prefix": form.code_prefix.data,
        "code_length": form.code_length.data or 12,
        "link_url": form.link_url.data,
        "topup_settings": {
            "adapter": form.topup_adapter.data,
            "product_code": form.topup_product_code.data,
            "account_type": form.topup_account_type.data,
        },
    }


def _fill_right_form(form: RightForm, right: Right) -> None:
    form.face_value.data = money.to_text(right.face_value, right.currency)
    form.unit_cost.data = money.to_text(right.unit_cost, right.currency)
    settings = right.topup_settings or {}
    form.topup_adapter.data = settings.get("adapter", "")
    form.topup_product_code.data = settings.get("product_code", "")
    form.topup_account_type.data = settings.get("account_type", "mobile")


@bp.route("/rights")
@login_required
@requires(roles.CATALOG_VIEW)
def rights() -> ResponseReturnValue:
    q, kind = request.args.get("q", "").strip(), request.args.get("kind", "")
    found = services.list_rights(q, kind)
    return render_template(
        "catalog/rights.html",
        rights=found,
        q=q,
        kind=kind,
        kinds=FULFILMENT_KINDS,
        stock={level.right.id: level for level in stock.stock_levels(found)},
    )


@bp.route("/rights/new", methods=["GET", "POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def new_right() -> ResponseReturnValue:
    form = RightForm()
    if form.validate_on_submit():
        try:
            right = services.create_right(_right_fields(form))
        except CatalogError as error:
            flash(str(error), "error")
        else:
            flash(_("Right created."), "info")
            return redirect(url_for("catalog.right", right_id=right.id))
    return render_template("catalog/right_form.html", form=form, right=None)


@bp.route("/rights/<int:right_id>")
@login_required
@requires(roles.CATALOG_VIEW)
def right(right_id: int) -> ResponseReturnValue:
    found = get_or_404(Right, right_id)
    batches = db.session.scalars(
        select(CardKeyBatch)
        .where(CardKeyBatch.right_id == found.id)
        .order_by(CardKeyBatch.id.desc())
        .limit(50)
    ).all()
    return render_template(
        "catalog/right.html",
        right=found,
        level=stock.stock_of(found),
        batches=batches,
        threshold_form=ThresholdForm(threshold=found.low_stock_threshold),
    )


@bp.route("/rights/<int:right_id>/edit", methods=["GET", "POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def edit_right(right_id: int) -> ResponseReturnValue:
    found = get_or_404(Right, right_id)
    form = RightForm(obj=found)
    if request.method == "GET":
        _fill_right_form(form, found)
    if form.validate_on_submit():
        try:
            services.update_right(found, _right_fields(form))
        except CatalogError as error:
            flash(str(error), "error")
        else:
            flash(_("Right saved."), "info")
            return redirect(url_for("catalog.right", right_id=found.id))
    return render_template("catalog/right_form.html", form=form, right=found)


@bp.route("/rights/<int:right_id>/alert", methods=["POST"])
@login_required
@requires(roles.INVENTORY_MANAGE)
def right_alert(right_id: int) -> ResponseReturnValue:
    found = get_or_404(Right, right_id)
    form = ThresholdForm()
    if form.validate_on_submit():
        try:
            services.set_low_stock_threshold(found, form.threshold.data)
        except CatalogError as error:
            flash(str(error), "error")
        else:
            flash(_("Stock alert saved."), "info")
    else:
        flash(_("The threshold is a whole number."), "error")
    return redirect(url_for("catalog.right", right_id=found.id))


# ---------------------------------------------------------------- bundles and plans


@bp.route("/bundles")
@login_required
@requires(roles.CATALOG_VIEW)
def bundles() -> ResponseReturnValue:
    q, status = request.args.get("q", "").strip(), request.args.get("status", "")
    return render_template(
        "catalog/bundles.html",
        bundles=services.list_bundles(q, status),
        q=q,
        status=status,
        statuses=BUNDLE_STATUSES,
    )


@bp.route("/bundles/new", methods=["GET", "POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def new_bundle() -> ResponseReturnValue:
    form = BundleForm()
    if form.validate_on_submit():
        try:
            bundle = services.create_bundle(form.data)
        except CatalogError as error:
            flash(str(error), "error")
        else:
            flash(_("Bundle created as a draft. Add rights and plans, then activate it."), "info")
            return redirect(url_for("catalog.bundle", bundle_id=bundle.id))
    return render_template("catalog/bundle_form.html", form=form, bundle=None)


@bp.route("/bundles/<int:bundle_id>")
@login_required
@requires(roles.CATALOG_VIEW)
def bundle(bundle_id: int) -> ResponseReturnValue:
    found = get_or_404(Bundle, bundle_id)
    item_form = BundleItemForm()
    item_form.right_id.choices = [
        (str(r.id), r.name) for r in services.list_rights() if r.archived_at is None
    ]
    return render_template(
        "catalog/bundle.html", bundle=found, items=found.items(), plans=found.plans(), item_form=item_form
    )


@bp.route("/bundles/<int:bundle_id>/edit", methods=["GET", "POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def edit_bundle(bundle_id: int) -> ResponseReturnValue:
    found = get_or_404(Bundle, bundle_id)
    form = BundleForm(obj=found)
    if form.validate_on_submit():
        try:
            services.update_bundle(found, form.data)
        except CatalogError as error:
            flash(str(error), "error")
        else:
            flash(_("Bundle saved."), "info")
            return redirect(url_for("catalog.bundle", bundle_id=found.id))
    return render_template("catalog/bundle_form.html", form=form, bundle=found)


@bp.route("/bundles/<int:bundle_id>/items", methods=["POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def bundle_item(bundle_id: int) -> ResponseReturnValue:
    found = get_or_404(Bundle, bundle_id)
    try:
        services.put_bundle_item(found, request.form.get("right_id"), request.form.get("quantity") or 1)
    except CatalogError as error:
        flash(str(error), "error")
    return redirect(url_for("catalog.bundle", bundle_id=found.id))


@bp.route("/bundles/<int:bundle_id>/items/<int:right_id>/remove", methods=["POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def remove_bundle_item(bundle_id: int, right_id: int) -> ResponseReturnValue:
    found = get_or_404(Bundle, bundle_id)
    get_or_404(Right, right_id)
    try:
        services.remove_bundle_item(found, right_id)
    except CatalogError as error:
        flash(str(error), "error")
    return redirect(url_for("catalog.bundle", bundle_id=found.id))


@bp.route("/bundles/<int:bundle_id>/status", methods=["POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def bundle_status(bundle_id: int) -> ResponseReturnValue:
    found = get_or_404(Bundle, bundle_id)
    try:
        services.change_bundle_status(found, request.form.get("status", ""))
    except CatalogError as error:
        flash(str(error), "error")
    else:
        flash(_("Bundle is now %(s)s.", s=found.status), "info")
    return redirect(url_for("catalog.bundle", bundle_id=found.id))


@bp.route("/bundles/<int:bundle_id>/clone", methods=["POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def clone_bundle(bundle_id: int) -> ResponseReturnValue:
    copy = services.clone_bundle(get_or_404(Bundle, bundle_id))
    flash(_("Bundle cloned; the copy is a draft."), "info")
    return redirect(url_for("catalog.bundle", bundle_id=copy.id))


def _plan_fields(form: PlanForm) -> dict[str, Any]:
    return {
        "name": form.name.data,
        "period_unit": form.period_unit.data,
        "period_days": form.period_days.data,
        "price": services.read_amount(form.price.data, form.currency.data),
        "currency": form.currency.data,
        "list_price": services.read_amount(form.list_price.data, form.currency.data, optional=True),
        "renewable": form.renewable.data,
        "purchase_limit": form.purchase_limit.data,
        "family_sharing": form.family_sharing.data,
        "family_max_members": form.family_max_members.data,
        "position": form.position.data or 0,
    }


@bp.route("/bundles/<int:bundle_id>/plans/new", methods=["GET", "POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def new_plan(bundle_id: int) -> ResponseReturnValue:
    found = get_or_404(Bundle, bundle_id)
    form = PlanForm()
    if form.validate_on_submit():
        try:
            services.create_plan(found, _plan_fields(form))
        except CatalogError as error:
            flash(str(error), "error")
        else:
            flash(_("Plan added."), "info")
            return redirect(url_for("catalog.bundle", bundle_id=found.id))
    return render_template("catalog/plan_form.html", form=form, bundle=found, plan=None)


@bp.route("/plans/<int:plan_id>/edit", methods=["GET", "POST"])
@login_required
@requires(roles.CATALOG_MANAGE)
def edit_plan(plan_id: int) -> ResponseReturnValue:
    plan = get_or_404(Plan, plan_id)
    found = get_or_404(Bundle, plan.bundle_id)
    form = PlanForm(obj=plan)
    if request.method == "GET":
        form.price.data = money.to_text(plan.price, plan.currency)
        form.list_price.data = (
            "" if plan.list_price is None else money.to_text(plan.list_price, plan.currency)
        )
    if form.validate_on_submit():
        try:
            services.update_plan(plan, _plan_fields(form))
        except CatalogError as error:
            flash(str(error), "error")
        else:
            flash(_("Plan saved. Orders already sold keep the plan as it was."), "info")
            return redirect(url_for("catalog.bundle", bundle_id=found.id))
    return render_template("catalog/plan_form.html", form=form, bundle=found, plan=plan)


# ---------------------------------------------------------------- inventory and imports


@bp.route("/inventory", endpoint="inventory")
@login_required
@requires(roles.CATALOG_VIEW)
def inventory_page() -> ResponseReturnValue:
    card_rights = [r for r in services.list_rights(kind="card_key") if r.archived_at is None]
    batches = db.session.scalars(select(CardKeyBatch).order_by(CardKeyBatch.id.desc()).limit(20)).all()
    names = {r.id: r.name for r in card_rights}
    return render_template(
        "catalog/inventory.html",
        levels=stock.stock_levels(card_rights),
        batches=batches,
        names=names,
        alerts=stock.low_stock_rights(),
    )


def _card_key_right_choices() -> list[tuple[str, str]]:
    return [(str(r.id), r.name) for r in services.list_rights(kind="card_key") if r.archived_at is None]


@bp.route("/inventory/import", methods=["GET", "POST"])
@login_required
@requires(roles.INVENTORY_MANAGE)
def import_keys() -> ResponseReturnValue:
    form = UploadForm()
    form.right_id.choices = _card_key_right_choices()
    if request.method == "GET" and request.args.get("right_id"):
        form.right_id.data = request.args["right_id"]
    if form.validate_on_submit():
        upload_file = form.file.data
        try:
            upload = inventory.start_upload(
                upload_file.stream,
                upload_file.filename or "",
                right_id=form.right_id.data,
                supplier=form.supplier.data or "",
                unit_cost=form.unit_cost.data or "",
                currency=form.currency.data or "",
                expires_on=form.expires_on.data or None,
                user_id=current_user.id,
                user_label=_user_label(),
            )
        except (CatalogError, FileFormatError) as error:
            flash(str(error), "error")
        else:
            return redirect(url_for("catalog.import_preview", upload_token=upload.token))
    return render_template("catalog/import.html", form=form)


def _options_from_form(form: ImportOptionsForm, upload: uploads.Upload) -> dict[str, Any]:
    options = dict(upload.options)
    options["encoding"] = form.encoding.data or None
    delimiter = form.delimiter.data
    options["delimiter"] = None if delimiter in (None, "auto") else ("" if delimiter == "line" else delimiter)
    header = form.has_header.data
    options["has_header"] = None if header in (None, "auto") else header == "yes"
    options["sheet"] = form.sheet.data or None
    mapping = {role: request.form.get(f"{role}_column", "") for role in fileformats.ROLES}
    options["mapping"] = {role: int(v) for role, v in mapping.items() if v.isdigit()} or None
    options["on_reject"] = form.on_reject.data or "skip"
    if any(options.get(k) != upload.options.get(k) for k in ("encoding", "delimiter", "has_header", "sheet")):
        options["mapping"] = None  # a new separator or header means new columns: detect the mapping again
    return options


def _options_form(preview: inventory.Preview | None, upload: uploads.Upload) -> ImportOptionsForm:
    form = ImportOptionsForm(formdata=None)
    options = upload.options
    form.encoding.data = options.get("encoding") or ""
    delimiter = options.get("delimiter")
    form.delimiter.data = "auto" if delimiter is None else ("line" if delimiter == "" else delimiter)
    header = options.get("has_header")
    form.has_header.data = "auto" if header is None else ("yes" if header else "no")
    form.sheet.data = options.get("sheet") or ""
    form.on_reject.data = options.get("on_reject", "skip")
    if preview is not None:
        columns = [("", "—")] + [
            (
                str(i),
                f"{i + 1}: {preview.detection.header[i]}"
                if i < len(preview.detection.header)
                else str(i + 1),
            )
            for i in range(max(preview.fmt.columns, 1))
        ]
        for role in fileformats.ROLES:
            field = getattr(form, f"{role}_column")
            field.choices = columns
            index = preview.fmt.mapping.get(role)
            field.data = "" if index is None else str(index)
    return form


@bp.route("/inventory/imports/<upload_token>", methods=["GET", "POST"])
@login_required
@requires(roles.INVENTORY_MANAGE)
def import_preview(upload_token: str) -> ResponseReturnValue:
    upload = _upload_or_404(upload_token)
    if request.method == "POST" and not upload.is_open:
        flash(_("This file is already being imported or was imported."), "info")
        return redirect(url_for("catalog.import_preview", upload_token=upload.token))
    if request.method == "POST":
        form = ImportOptionsForm()
        options = _options_from_form(form, upload)
        try:
            if request.form.get("action") == "import":
                job_id = inventory.confirm_import(upload, options, current_user.id)
                if job_id is None:
                    flash(_("Import finished."), "info")
            else:
                inventory.preview_import(upload, options)
                upload.options = inventory.clean_options(options)
                upload.save()
        except (CatalogError, FileFormatError) as error:
            flash(str(error), "error")
        return redirect(url_for("catalog.import_preview", upload_token=upload.token))
    return _render_import_state(upload)


def _render_import_state(upload: uploads.Upload) -> ResponseReturnValue:
    upload = _upload_or_404(upload.token)
    preview, problem = None, None
    if upload.is_open:
        try:
            preview = inventory.preview_import(upload)
        except (CatalogError, FileFormatError) as error:
            problem = str(error)
    run = find(JobRun, upload.job_id) if upload.job_id else None
    right_found = find(Right, upload.right_id)
    return render_template(
        "catalog/import_preview.html",
        upload=upload,
        preview=preview,
        problem=problem,
        form=_options_form(preview, upload),
        right=right_found,
        job=live_status(run) if run is not None else None,
    )


@bp.route("/inventory/imports/<upload_token>/rejections.csv")
@login_required
@requires(roles.INVENTORY_MANAGE)
def import_rejections(upload_token: str) -> ResponseReturnValue:
    upload = _upload_or_404(upload_token)
    # The report was written by SafeCsvWriter (catalog.importing.RejectionReport) as the import ran.
    body = (
        upload.report.read_bytes()
        if upload.report.is_file()
        else csv_document(["line", "reason"], []).encode()
    )
    return Response(
        body,
        mimetype=MIME_TYPE,
        headers={"Content-Disposition": f'attachment; filename="rejections-{upload.token[:8]}.csv"'},
    )


@bp.route("/inventory/batches/<int:batch_id>")
@login_required
@requires(roles.CATALOG_VIEW)
def batch(batch_id: int) -> ResponseReturnValue:
    found = get_or_404(CardKeyBatch, batch_id)
    counts = dict.fromkeys(KEY_STATUSES, 0)

    for status, count in db.session.execute(
        select(CardKey.status, func.count()).where(CardKey.batch_id == found.id).group_by(CardKey.status)
    ):
        counts[status] = int(count)
    return render_template(
        "catalog/batch.html",
        batch=found,
        counts=counts,
        void_form=VoidForm(),
        right=db.session.get(Right, (found.tenant_id, found.right_id)),
    )


@bp.route("/inventory/batches/<int:batch_id>/void", methods=["POST"])
@login_required
@requires(roles.INVENTORY_MANAGE)
def void_batch(batch_id: int) -> ResponseReturnValue:
    found = get_or_404(CardKeyBatch, batch_id)
    try:
        count = inventory.void_batch(found, request.form.get("reason"))
    except CatalogError as error:
        flash(str(error), "error")
    else:
        flash(_("%(n)s keys voided.", n=count), "info")
    return redirect(url_for("catalog.batch", batch_id=found.id))


def _key_filter_from(args: Any) -> inventory.KeyFilter:
    def number(name: str) -> int | None:
        value = (args.get(name) or "").strip()
        return int(value) if value.isdigit() else None

    expires = (args.get("expires_before") or "").strip()
    return inventory.KeyFilter(
        right_id=number("right_id"),
        batch_id=number("batch_id"),
        status=args.get("status") if args.get("status") in KEY_STATUSES else None,
        expires_before=fileformats.parse_expiry(expires, current_tenant().time_zone) if expires else None,
    )


@bp.route("/inventory/keys")
@login_required
@requires(roles.CATALOG_VIEW)
def card_keys() -> ResponseReturnValue:
    key_filter = _key_filter_from(request.args)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    rows = db.session.scalars(
        inventory.keys_query(key_filter)
        .order_by(CardKey.id.desc())
        .offset((page - 1) * KEYS_PER_PAGE)
        .limit(KEYS_PER_PAGE + 1)
    ).all()
    names = {r.id: r.name for r in services.list_rights(kind="card_key")}
    return render_template(
        "catalog/keys.html",
        keys=rows[:KEYS_PER_PAGE],
        has_next=len(rows) > KEYS_PER_PAGE,
        page=page,
        names=names,
        key_filter=key_filter,
        statuses=KEY_STATUSES,
        args=request.args,
        void_form=VoidFilterForm(formdata=None),
        pager_args={k: v for k, v in request.args.items() if k != "page"},
    )


@bp.route("/inventory/keys/void", methods=["POST"])
@login_required
@requires(roles.INVENTORY_MANAGE)
def void_card_keys() -> ResponseReturnValue:
    key_filter = _key_filter_from(request.form)
    key_filter.status = "available"
    try:
        count = inventory.void_keys(key_filter, request.form.get("reason"))
    except CatalogError as error:
        flash(str(error), "error")
    else:
        flash(_("%(n)s keys voided.", n=count), "info")
    return redirect(url_for("catalog.card_keys", right_id=key_filter.right_id, batch_id=key_filter.batch_id))


@bp.route("/inventory/keys/<int:card_key_id>/void", methods=["POST"])
@login_required
@requires(roles.INVENTORY_MANAGE)
def void_card_key(card_key_id: int) -> ResponseReturnValue:
    key = get_or_404(CardKey, card_key_id)
    try:
        inventory.void_key(key, request.form.get("reason"))
    except CatalogError as error:
        flash(str(error), "error")
    else:
        flash(_("Key voided."), "info")
    return redirect(url_for("catalog.card_keys", right_id=key.right_id))


@bp.route("/inventory/keys/<int:card_key_id>/reveal", methods=["POST"])
@login_required
@requires(roles.INVENTORY_REVEAL)
def reveal_card_key(card_key_id: int) -> ResponseReturnValue:
    key = get_or_404(CardKey, card_key_id)
    try:
        value = inventory.reveal_key(key)
    except CatalogError as error:
        return jsonify({"code": "cannot_decrypt", "message": str(error)}), 409
    return jsonify({"value": value})
