"""The catalog's REST resources under /api/v1: rights, bundles, plans, imports, batches, card keys, stock.

Amounts are integers in minor units (分) with an ISO currency; ids are strings. Card keys are only ever
shown masked here: there is no plaintext export.
"""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any, Literal

from flask import g, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pydantic import BaseModel, Field
from sqlalchemy import select

from catalog import inventory, services, stock, uploads
from catalog.fileformats import FileFormatError
from catalog.models import Bundle as BundleModel
from catalog.models import CardKey, CardKeyBatch, Plan, Right
from catalog.services import CatalogError
from saas.errors import ApiError
from tenants import roles
from tenants.api import Id, QueryParam, RequestModel, ResponseModel, api_blueprint, api_endpoint, paginate
from tenants.lookup import api_get_or_404

bp = api_blueprint("catalog_api")
NO_RIGHT = _l("No such %(what)s.", what=_l("right"))
NO_BUNDLE = _l("No such %(what)s.", what=_l("bundle"))
NO_PLAN = _l("No such %(what)s.", what=_l("plan"))
NO_BATCH = _l("No such %(what)s.", what=_l("batch"))
NO_CARD_KEY = _l("No such %(what)s.", what=_l("card key"))
Kind = Literal["card_key", "code", "topup", "link"]
PeriodUnit = Literal["month", "quarter", "year", "days"]


# ---------------------------------------------------------------- schemas


class RightIn(RequestModel):
    """A new right. Amounts in minor units."""

    name: str
    kind: Kind
    provider: str = ""
    description: str = ""
    face_value: int = 0
    unit_cost: int = 0
    currency: str = "CNY"
    validity_days: int | None = None
    reusable: bool = False
    max_deliveries: int = 1
    code_prefix: str = ""
    code_length: int = 12
    topup_settings: dict[str, Any] = Field(default_factory=dict)
    link_url: str = ""


class RightPatch(RequestModel):
    """Changes to a right; fields left out stay as they are."""

    name: str | None = None
    kind: Kind | None = None
    provider: str | None = None
    description: str | None = None
    face_value: int | None = None
    unit_cost: int | None = None
    currency: str | None = None
    validity_days: int | None = None
    reusable: bool | None = None
    max_deliveries: int | None = None
    code_prefix: str | None = None
    code_length: int | None = None
    topup_settings: dict[str, Any] | None = None
    link_url: str | None = None
    low_stock_threshold: int | None = None


class RightOut(ResponseModel):
    id: Id
    name: str
    provider: str
    description: str
    kind: str
    face_value: int
    unit_cost: int
    currency: str
    validity_days: int | None
    reusable: bool
    max_deliveries: int
    code_prefix: str
    code_length: int
    topup_settings: dict[str, Any]
    link_url: str
    low_stock_threshold: int | None
    low_stock: bool
    created_at: dt.datetime


class ItemIn(RequestModel):
    right_id: str
    quantity: int = 1


class ItemOut(BaseModel):
    right_id: str
    right_name: str
    quantity: int


class PlanIn(RequestModel):
    """A new plan (tier) of a bundle. Prices in minor units."""

    bundle_id: str
    name: str
    period_unit: PeriodUnit
    period_days: int | None = None
    price: int
    list_price: int | None = None
    currency: str = "CNY"
    renewable: bool = True
    purchase_limit: int | None = None
    position: int = 0


class PlanPatch(RequestModel):
    """Changes to a plan; orders already sold keep their snapshot."""

    name: str | None = None
    period_unit: PeriodUnit | None = None
    period_days: int | None = None
    price: int | None = None
    list_price: int | None = None
    currency: str | None = None
    renewable: bool | None = None
    purchase_limit: int | None = None
    position: int | None = None


class PlanOut(ResponseModel):
    id: Id
    bundle_id: Id
    name: str
    period_unit: str
    period_days: int = Field(validation_alias="duration_days")
    price: int
    list_price: int | None
    discount_percent: int | None
    currency: str
    renewable: bool
    purchase_limit: int | None
    position: int
    version: int


class PlanSnapshotOut(BaseModel):
    """What an order keeps of a plan: the plan, the bundle and its rights, as they were when sold."""

    plan: dict[str, Any]
    bundle: dict[str, Any]
    taken_at: str


class BundleIn(RequestModel):
    name: str
    description: str = ""
    cover_text: str = ""
    items: list[ItemIn] = Field(default_factory=list)


class BundlePatch(RequestModel):
    name: str | None = None
    description: str | None = None
    cover_text: str | None = None
    items: list[ItemIn] | None = None


class BundleOut(BaseModel):
    id: str
    name: str
    description: str
    cover_text: str
    status: str
    cloned_from_id: str | None
    items: list[ItemOut]
    plans: list[PlanOut]
    created_at: dt.datetime


class StockOut(BaseModel):
    right_id: str
    right_name: str
    available: int
    reserved: int
    delivered: int
    redeemed: int
    void: int
    expired: int
    available_units: int
    value_at_cost: dict[str, int]
    delivered_last_30_days: int
    days_of_cover: float | None
    cover_beyond_a_year: bool = False  # then days_of_cover is capped at 365
    low_stock_threshold: int | None
    low_stock: bool


class ImportOptionsIn(RequestModel):
    """How to read the file; anything left out is detected."""

    encoding: str | None = None
    delimiter: str | None = Field(default=None, description="'' for one key per line")
    has_header: bool | None = None
    mapping: dict[str, int] | str | None = Field(
        default=None, description="0-based columns, or 'card=1,secret=2'"
    )
    sheet: str | None = None
    on_reject: Literal["skip", "abort"] | None = None


class ImportOut(BaseModel):
    id: str
    status: str
    right_id: str
    filename: str
    checksum: str
    size: int
    supplier: str
    unit_cost: int
    currency: str
    expires_on: str | None
    options: dict[str, Any]
    counts: dict[str, int]
    preview_counts: dict[str, int] | None
    batch_id: str | None
    job_id: str | None
    message: str
    rejection_report: str


class RejectionOut(BaseModel):
    line: int
    reason: str


class RejectionReportOut(BaseModel):
    items: list[RejectionOut]
    total: int
    truncated: bool


class BatchOut(ResponseModel):
    id: Id
    right_id: Id
    supplier: str
    unit_cost: int
    currency: str
    expires_at: dt.datetime | None
    source_filename: str
    source_checksum: str
    imported_by: str
    rows_read: int
    imported: int
    duplicates_in_file: int
    duplicates_in_stock: int
    rejected: int
    created_at: dt.datetime


class CardKeyOut(ResponseModel):
    id: Id
    right_id: Id
    batch_id: Id | None
    status: str
    mask: str
    expires_at: dt.datetime | None
    delivery_count: int
    max_deliveries: int
    created_at: dt.datetime


class VoidIn(RequestModel):
    reason: str | None = None


class VoidOut(BaseModel):
    voided: int


# ---------------------------------------------------------------- helpers


def _invalid(error: Exception) -> ApiError:
    return ApiError(422, "invalid", str(error))


def _bundle_out(bundle: BundleModel) -> BundleOut:
    """Describe a bundle with its rights (named) and its plans, read from their own tables."""
    return BundleOut(
        id=str(bundle.id),
        name=bundle.name,
        description=bundle.description,
        cover_text=bundle.cover_text,
        status=bundle.status,
        cloned_from_id=str(bundle.cloned_from_id) if bundle.cloned_from_id else None,
        items=[
            ItemOut(right_id=str(i.right_id), right_name=r.name, quantity=i.quantity)
            for i, r in bundle.items()
        ],
        plans=[PlanOut.model_validate(p) for p in bundle.plans()],
        created_at=bundle.created_at,
    )


def _stock_out(level: stock.StockLevel) -> StockOut:
    return StockOut(
        right_id=str(level.right.id),
        right_name=level.right.name,
        **level.counts,
        available_units=level.available_units,
        value_at_cost=level.value_at_cost,
        delivered_last_30_days=level.delivered_recently,
        days_of_cover=level.days_of_cover,
        cover_beyond_a_year=level.cover_beyond_a_year,
        low_stock_threshold=level.right.low_stock_threshold,
        low_stock=level.is_low,
    )


def _import_out(upload: uploads.Upload, preview_counts: dict[str, int] | None = None) -> ImportOut:
    return ImportOut(
        id=upload.token,
        status=upload.state,
        right_id=str(upload.right_id),
        filename=upload.filename,
        checksum=upload.checksum,
        size=upload.size,
        supplier=upload.supplier,
        unit_cost=upload.unit_cost,
        currency=upload.currency,
        expires_on=upload.expires_on,
        options=upload.options,
        counts=upload.outcome,
        preview_counts=preview_counts,
        batch_id=str(upload.batch_id) if upload.batch_id else None,
        job_id=str(upload.job_id) if upload.job_id else None,
        message=upload.message,
        rejection_report=url_for("catalog_api.get_import_rejections", upload_token=upload.token),
    )


def _id_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise ApiError(400, "invalid_filter", _("%(name)s must be an id.", name=name))
    return int(value)


def _upload(token: str) -> uploads.Upload:
    upload = uploads.find_upload(token)
    if upload is None:
        raise ApiError(404, "not_found", "no such import")
    return upload


# ---------------------------------------------------------------- rights


@api_endpoint(
    bp,
    "/rights",
    "GET",
    summary="List rights, newest first",
    scope=roles.CATALOG_VIEW,
    tag="catalog",
    response_model=RightOut,
    paginated=True,
    query=[QueryParam("q", "search name and provider"), QueryParam("kind", "card_key, code, topup, link")],
)
def list_rights() -> tuple[list[RightOut], str | None]:
    rows, cursor = paginate(
        services.rights_query(request.args.get("q", ""), request.args.get("kind", "")), Right.id
    )
    return [RightOut.model_validate(r) for r in rows], cursor


@api_endpoint(
    bp,
    "/rights",
    "POST",
    summary="Create a right",
    scope=roles.CATALOG_MANAGE,
    tag="catalog",
    request_model=RightIn,
    response_model=RightOut,
    status=201,
    errors=(422,),
)
def create_right(body: RightIn) -> RightOut:
    try:
        return RightOut.model_validate(services.create_right(body.model_dump()))
    except CatalogError as error:
        raise _invalid(error) from error


@api_endpoint(
    bp,
    "/rights/<int:right_id>",
    "GET",
    summary="Read a right",
    scope=roles.CATALOG_VIEW,
    tag="catalog",
    response_model=RightOut,
    errors=(404,),
)
def get_right(right_id: int) -> RightOut:
    return RightOut.model_validate(api_get_or_404(Right, right_id, NO_RIGHT))


@api_endpoint(
    bp,
    "/rights/<int:right_id>",
    "PATCH",
    summary="Change a right (and its low-stock threshold)",
    scope=roles.CATALOG_MANAGE,
    tag="catalog",
    request_model=RightPatch,
    response_model=RightOut,
    errors=(404, 422),
)
def update_right(right_id: int, body: RightPatch) -> RightOut:
    right = api_get_or_404(Right, right_id, NO_RIGHT)
    fields = body.model_dump(exclude_unset=True)
    threshold_given = "low_stock_threshold" in fields
    threshold = fields.pop("low_stock_threshold", None)
    try:
        if fields:
            services.update_right(right, fields)
        if threshold_given:
            if roles.INVENTORY_MANAGE not in g.api_key.scopes:
                raise ApiError(
                    403, "forbidden", _("Setting a stock alert needs the scope 'inventory.manage'.")
                )
            services.set_low_stock_threshold(right, threshold)
    except CatalogError as error:
        raise _invalid(error) from error
    return RightOut.model_validate(right)


@api_endpoint(
    bp,
    "/rights/<int:right_id>/stock",
    "GET",
    summary="Stock of one right by state, value and cover",
    scope=roles.CATALOG_VIEW,
    tag="inventory",
    response_model=StockOut,
    errors=(404,),
)
def get_right_stock(right_id: int) -> StockOut:
    level = stock.stock_of(api_get_or_404(Right, right_id, NO_RIGHT))
    if level is None:
        raise ApiError(404, "not_found", _("This right is not delivered from card keys, so it has no stock."))
    return _stock_out(level)


@api_endpoint(
    bp,
    "/stock",
    "GET",
    summary="Stock of every card-key right",
    scope=roles.CATALOG_VIEW,
    tag="inventory",
    response_model=StockOut,
    paginated=True,
)
def list_stock() -> tuple[list[StockOut], str | None]:
    rows, cursor = paginate(services.rights_query(kind="card_key"), Right.id)
    return [_stock_out(level) for level in stock.stock_levels(rows)], cursor


# ---------------------------------------------------------------- bundles and plans


@api_endpoint(
    bp,
    "/bundles",
    "GET",
    summary="List bundles, newest first",
    scope=roles.CATALOG_VIEW,
    tag="catalog",
    response_model=BundleOut,
    paginated=True,
    query=[QueryParam("q", "search name and description"), QueryParam("status", "draft, active, archived")],
)
def list_bundles() -> tuple[list[BundleOut], str | None]:
    statement = services.bundles_query(request.args.get("q", ""), request.args.get("status", ""))
    rows, cursor = paginate(statement, BundleModel.id)
    return [_bundle_out(b) for b in rows], cursor


@api_endpoint(
    bp,
    "/bundles",
    "POST",
    summary="Create a draft bundle, optionally with its rights",
    scope=roles.CATALOG_MANAGE,
    tag="catalog",
    request_model=BundleIn,
    response_model=BundleOut,
    status=201,
    errors=(422,),
)
def create_bundle(body: BundleIn) -> BundleOut:
    try:
        bundle = services.create_bundle(body.model_dump(exclude={"items"}))
        if body.items:
            services.set_bundle_items(bundle, [(i.right_id, i.quantity) for i in body.items])
    except CatalogError as error:
        raise _invalid(error) from error
    return _bundle_out(bundle)


@api_endpoint(
    bp,
    "/bundles/<int:bundle_id>",
    "GET",
    summary="Read a bundle with its rights and plans",
    scope=roles.CATALOG_VIEW,
    tag="catalog",
    response_model=BundleOut,
    errors=(404,),
)
def get_bundle(bundle_id: int) -> BundleOut:
    return _bundle_out(api_get_or_404(BundleModel, bundle_id, NO_BUNDLE))


@api_endpoint(
    bp,
    "/bundles/<int:bundle_id>",
    "PATCH",
    summary="Change a bundle; `items` replaces its rights",
    scope=roles.CATALOG_MANAGE,
    tag="catalog",
    request_model=BundlePatch,
    response_model=BundleOut,
    errors=(404, 422),
)
def update_bundle(bundle_id: int, body: BundlePatch) -> BundleOut:
    bundle = api_get_or_404(BundleModel, bundle_id, NO_BUNDLE)
    try:
        fields = body.model_dump(exclude_unset=True, exclude={"items"})
        if fields:
            services.update_bundle(bundle, fields)
        if body.items is not None:
            services.set_bundle_items(bundle, [(i.right_id, i.quantity) for i in body.items])
    except CatalogError as error:
        raise _invalid(error) from error
    return _bundle_out(bundle)


def _bundle_status(bundle_id: int, status: str) -> BundleOut:
    bundle = api_get_or_404(BundleModel, bundle_id, NO_BUNDLE)
    try:
        services.change_bundle_status(bundle, status)
    except CatalogError as error:
        raise ApiError(409, "conflict", str(error)) from error
    return _bundle_out(bundle)


@api_endpoint(
    bp,
    "/bundles/<int:bundle_id>/activate",
    "POST",
    summary="Activate a draft bundle",
    scope=roles.CATALOG_MANAGE,
    tag="catalog",
    response_model=BundleOut,
    errors=(404, 409),
)
def activate_bundle(bundle_id: int) -> BundleOut:
    return _bundle_status(bundle_id, "active")


@api_endpoint(
    bp,
    "/bundles/<int:bundle_id>/archive",
    "POST",
    summary="Archive a bundle (it stays in history)",
    scope=roles.CATALOG_MANAGE,
    tag="catalog",
    response_model=BundleOut,
    errors=(404, 409),
)
def archive_bundle(bundle_id: int) -> BundleOut:
    return _bundle_status(bundle_id, "archived")


@api_endpoint(
    bp,
    "/bundles/<int:bundle_id>/clone",
    "POST",
    summary="Clone a bundle into a new draft",
    scope=roles.CATALOG_MANAGE,
    tag="catalog",
    response_model=BundleOut,
    status=201,
    errors=(404,),
)
def clone_bundle(bundle_id: int) -> BundleOut:
    return _bundle_out(services.clone_bundle(api_get_or_404(BundleModel, bundle_id, NO_BUNDLE)))


@api_endpoint(
    bp,
    "/plans",
    "POST",
    summary="Add a plan (tier) to a bundle",
    scope=roles.CATALOG_MANAGE,
    tag="catalog",
    request_model=PlanIn,
    response_model=PlanOut,
    status=201,
    errors=(404, 422),
)
def create_plan(body: PlanIn) -> PlanOut:
    if not body.bundle_id.isdigit():
        raise ApiError(404, "not_found", _("No such bundle."))
    bundle = api_get_or_404(BundleModel, int(body.bundle_id), NO_BUNDLE)
    try:
        return PlanOut.model_validate(services.create_plan(bundle, body.model_dump(exclude={"bundle_id"})))
    except CatalogError as error:
        raise _invalid(error) from error


@api_endpoint(
    bp,
    "/plans/<int:plan_id>",
    "GET",
    summary="Read a plan",
    scope=roles.CATALOG_VIEW,
    tag="catalog",
    response_model=PlanOut,
    errors=(404,),
)
def get_plan(plan_id: int) -> PlanOut:
    return PlanOut.model_validate(api_get_or_404(Plan, plan_id, NO_PLAN))


@api_endpoint(
    bp,
    "/plans/<int:plan_id>",
    "PATCH",
    summary="Change a plan (sold orders keep their snapshot)",
    scope=roles.CATALOG_MANAGE,
    tag="catalog",
    request_model=PlanPatch,
    response_model=PlanOut,
    errors=(404, 422),
)
def update_plan(plan_id: int, body: PlanPatch) -> PlanOut:
    plan = api_get_or_404(Plan, plan_id, NO_PLAN)
    try:
        return PlanOut.model_validate(services.update_plan(plan, body.model_dump(exclude_unset=True)))
    except CatalogError as error:
        raise _invalid(error) from error


@api_endpoint(
    bp,
    "/plans/<int:plan_id>/snapshot",
    "GET",
    summary="The snapshot an order would keep of this plan",
    scope=roles.CATALOG_VIEW,
    tag="catalog",
    response_model=PlanSnapshotOut,
    errors=(404,),
)
def get_plan_snapshot(plan_id: int) -> PlanSnapshotOut:
    return PlanSnapshotOut(**api_get_or_404(Plan, plan_id, NO_PLAN).snapshot())


# ---------------------------------------------------------------- imports


def _form_options() -> dict[str, Any]:
    form = request.form
    options: dict[str, Any] = {}
    for key in ("encoding", "delimiter", "sheet", "on_reject", "mapping"):
        if key in form:
            options[key] = form[key] if key == "delimiter" else (form[key] or None)
    if form.get("has_header") in ("true", "false", "1", "0", "yes", "no"):
        options["has_header"] = form["has_header"] in ("true", "1", "yes")
    return options


@api_endpoint(
    bp,
    "/inventory/imports",
    "POST",
    summary="Upload a card-key file (multipart/form-data: file, right_id, supplier, unit_cost as "
    "'12.50', optional currency, expires_on, encoding, delimiter, has_header, mapping, sheet, "
    "on_reject=skip|abort, confirm=true to import at once); returns the preview or the import",
    scope=roles.INVENTORY_MANAGE,
    tag="inventory",
    response_model=ImportOut,
    status=201,
    errors=(400, 422),
)
def create_import() -> ImportOut:
    file = request.files.get("file")
    if file is None:
        raise ApiError(400, "file_missing", _("Send the file as the multipart/form-data field 'file'."))
    options = _form_options()
    try:
        upload = inventory.start_upload(
            file.stream,
            file.filename or "",
            right_id=request.form.get("right_id"),
            supplier=request.form.get("supplier", ""),
            unit_cost=request.form.get("unit_cost", ""),
            currency=request.form.get("currency", ""),
            expires_on=request.form.get("expires_on") or None,
            user_label=f"api key {g.api_key.name}",
        )
        if request.form.get("confirm") in ("true", "1", "yes"):
            inventory.confirm_import(upload, options)
            return _import_out(_upload(upload.token))
        preview = inventory.preview_import(upload, options)
        upload.options = inventory.clean_options(options)
        upload.save()
    except FileFormatError as error:
        raise ApiError(422, "unreadable_file", str(error)) from error
    except CatalogError as error:
        raise _invalid(error) from error
    return _import_out(upload, preview.counts)


@api_endpoint(
    bp,
    "/inventory/imports/<upload_token>",
    "GET",
    summary="Read an import: its state and counts",
    scope=roles.INVENTORY_MANAGE,
    tag="inventory",
    response_model=ImportOut,
    errors=(404,),
)
def get_import(upload_token: str) -> ImportOut:
    return _import_out(_upload(upload_token))


@api_endpoint(
    bp,
    "/inventory/imports/<upload_token>/confirm",
    "POST",
    summary="Start an uploaded import, with reading options; big files run as a job",
    scope=roles.INVENTORY_MANAGE,
    tag="inventory",
    request_model=ImportOptionsIn,
    response_model=ImportOut,
    errors=(404, 409, 422),
)
def confirm_import(upload_token: str, body: ImportOptionsIn) -> ImportOut:
    upload = _upload(upload_token)
    if not upload.is_open:
        raise ApiError(409, "conflict", "this file is already being imported or was imported")
    options = {**upload.options, **body.model_dump(exclude_unset=True)}
    try:
        inventory.confirm_import(upload, options)
    except FileFormatError as error:
        raise ApiError(422, "unreadable_file", str(error)) from error
    except CatalogError as error:
        raise _invalid(error) from error
    return _import_out(_upload(upload_token))


@api_endpoint(
    bp,
    "/inventory/imports/<upload_token>/rejections",
    "GET",
    summary="The rejection report of an import: line numbers and reasons (first 10,000)",
    scope=roles.INVENTORY_MANAGE,
    tag="inventory",
    response_model=RejectionReportOut,
    errors=(404,),
)
def get_import_rejections(upload_token: str) -> RejectionReportOut:
    upload = _upload(upload_token)
    items: list[RejectionOut] = []
    total = 0
    if upload.report.is_file():
        with upload.report.open(encoding="utf-8-sig", newline="") as report:
            for row in csv.DictReader(report):
                total += 1
                if len(items) < 10000:
                    items.append(RejectionOut(line=int(row["line"]), reason=row["reason"]))
    return RejectionReportOut(items=items, total=total, truncated=total > len(items))


# ---------------------------------------------------------------- batches and keys


@api_endpoint(
    bp,
    "/inventory/batches",
    "GET",
    summary="List card-key batches, newest first",
    scope=roles.CATALOG_VIEW,
    tag="inventory",
    response_model=BatchOut,
    paginated=True,
    query=[QueryParam("right_id", "only this right's batches")],
)
def list_batches() -> tuple[list[BatchOut], str | None]:
    statement = select(CardKeyBatch)
    right_id = _id_arg("right_id")
    if right_id is not None:
        statement = statement.where(CardKeyBatch.right_id == right_id)
    rows, cursor = paginate(statement, CardKeyBatch.id)
    return [BatchOut.model_validate(b) for b in rows], cursor


@api_endpoint(
    bp,
    "/inventory/batches/<int:batch_id>",
    "GET",
    summary="Read a batch and its counts",
    scope=roles.CATALOG_VIEW,
    tag="inventory",
    response_model=BatchOut,
    errors=(404,),
)
def get_batch(batch_id: int) -> BatchOut:
    return BatchOut.model_validate(api_get_or_404(CardKeyBatch, batch_id, NO_BATCH))


@api_endpoint(
    bp,
    "/inventory/batches/<int:batch_id>/void",
    "POST",
    summary="Void every still-available key of a batch, with a reason",
    scope=roles.INVENTORY_MANAGE,
    tag="inventory",
    request_model=VoidIn,
    response_model=VoidOut,
    errors=(404, 422),
)
def void_batch(batch_id: int, body: VoidIn) -> VoidOut:
    batch = api_get_or_404(CardKeyBatch, batch_id, NO_BATCH)
    try:
        return VoidOut(voided=inventory.void_batch(batch, body.reason))
    except CatalogError as error:
        raise _invalid(error) from error


@api_endpoint(
    bp,
    "/card-keys",
    "GET",
    summary="List card keys (masked), newest first",
    scope=roles.CATALOG_VIEW,
    tag="inventory",
    response_model=CardKeyOut,
    paginated=True,
    query=[
        QueryParam("right_id", "only this right"),
        QueryParam("batch_id", "only this batch"),
        QueryParam("status", "available, reserved, delivered, redeemed, void, expired"),
    ],
)
def list_card_keys() -> tuple[list[CardKeyOut], str | None]:
    key_filter = inventory.KeyFilter(
        right_id=_id_arg("right_id"), batch_id=_id_arg("batch_id"), status=request.args.get("status")
    )
    rows, cursor = paginate(inventory.keys_query(key_filter), CardKey.id)
    return [CardKeyOut.model_validate(k) for k in rows], cursor


@api_endpoint(
    bp,
    "/card-keys/<int:card_key_id>/void",
    "POST",
    summary="Void one available key, with a reason",
    scope=roles.INVENTORY_MANAGE,
    tag="inventory",
    request_model=VoidIn,
    response_model=CardKeyOut,
    errors=(404, 422),
)
def void_card_key(card_key_id: int, body: VoidIn) -> CardKeyOut:
    key = api_get_or_404(CardKey, card_key_id, NO_CARD_KEY)
    try:
        inventory.void_key(key, body.reason)
    except CatalogError as error:
        raise _invalid(error) from error
    return CardKeyOut.model_validate(key)
