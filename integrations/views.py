"""Back-office pages of integrations: channels (setup, secret, SKU mapping, fees, inbox, held and dead
deliveries with replay, CSV orders), channel spend, and outbound webhook endpoints. Thin views."""

from __future__ import annotations

from typing import TypeVar

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from catalog.models import Bundle, Plan
from integrations import channels as channel_service
from integrations import outbound
from integrations.adapters import ADAPTERS, adapter_for, channel_kinds
from integrations.channels import ChannelError, ChannelSettings, SpendEntry
from integrations.forms import (
    CATEGORY_LABELS,
    ChannelSettingsForm,
    CredentialsForm,
    EndpointForm,
    MappingForm,
    NewChannelForm,
    RotateForm,
    SecretForm,
    SpendForm,
    SpendUploadForm,
    UploadForm,
)
from integrations.inbound import csv_upload, inbox
from integrations.inbound.progress import inbox_progress
from integrations.models import (
    INBOX_STATUSES,
    Channel,
    ChannelSpend,
    InboxDelivery,
    OutboundDelivery,
    SkuMapping,
    WebhookEndpoint,
)
from integrations.outbound import EndpointError
from orders.models import Order
from saas import money
from saas.extensions import db
from saas.links import public_url
from saas.uploads import read_capped
from tenants import roles
from tenants.context import requires
from tenants.lookup import get_or_404

bp = Blueprint("integrations", __name__, url_prefix="/t/<tenant_slug>/channels")
M = TypeVar("M")
INBOX_PAGE = 100


def _plan_choices() -> list[tuple[int, str]]:
    rows = db.session.execute(
        select(Plan, Bundle)
        .join(Bundle, (Bundle.tenant_id == Plan.tenant_id) & (Bundle.id == Plan.bundle_id))
        .order_by(Bundle.name, Plan.position, Plan.id)
    )
    return [
        (plan.id, f"{bundle.name} · {plan.name} ({money.format_money(plan.price, plan.currency)})")
        for plan, bundle in rows
    ]


def _channel_choices() -> list[tuple[int, str]]:
    return [(c.id, c.name) for c in channel_service.list_channels()]


def hook_url(channel: Channel) -> str:
    """Return the full webhook URL of a channel, as the platform must be given it."""
    return public_url("hooks.receive_delivery", public_id=channel.public_id)


# ---------------------------------------------------------------- channels


@bp.route("")
@login_required
@requires(roles.CHANNELS_VIEW)
def channels() -> ResponseReturnValue:
    found = channel_service.list_channels()
    counts = {c.id: channel_service.inbox_counts(c.id) for c in found}
    return render_template("integrations/channels.html", channels=found, counts=counts, adapters=ADAPTERS)


@bp.route("/new", methods=["GET", "POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def new_channel() -> ResponseReturnValue:
    form = NewChannelForm()
    form.kind.choices = channel_kinds()
    if form.validate_on_submit():
        kind = form.kind.data or ""
        fee_bp = ADAPTERS[kind].default_fee_bp if kind in ADAPTERS else 0
        try:
            channel, secret = channel_service.create_channel(
                kind,
                ChannelSettings(
                    name=form.name.data or "",
                    currency=form.currency.data or "CNY",
                    fee_percent=f"{fee_bp / 100:.2f}",
                ),
                secret=form.secret.data or None,
            )
        except ChannelError as error:
            flash(str(error), "error")
        else:
            flash(_("Channel connected. Follow the steps below to point the platform at it."), "info")
            if secret:
                flash(
                    _("Its signing secret was generated; reveal it below when the platform asks for it."),
                    "info",
                )
            return redirect(url_for("integrations.channel", channel_id=channel.id))
    return render_template("integrations/new_channel.html", form=form)


@bp.route("/<int:channel_id>")
@login_required
@requires(roles.CHANNELS_VIEW)
def channel(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    mapping_form = MappingForm()
    mapping_form.plan_id.choices = _plan_choices()
    mapping_form.ref_kind.choices = [
        c for c in mapping_form.ref_kind.choices if c[0] in adapter_for(found.kind).ref_kinds
    ]
    settings_form = ChannelSettingsForm(
        name=found.name,
        currency=found.currency,
        fee_percent=f"{found.fee_percent_bp / 100:g}",
        fee_fixed=money.to_text(found.fee_fixed, found.currency),
        price_tolerance=f"{found.price_tolerance_bp / 100:g}",
        status=found.status,
    )
    attention = list(
        db.session.scalars(
            select(InboxDelivery)
            .where(
                InboxDelivery.channel_id == found.id,
                InboxDelivery.status.in_(("held", "dead", "failed", "invalid")),
            )
            .order_by(InboxDelivery.received_at.desc())
            .limit(INBOX_PAGE)
        )
    )
    recent = list(
        db.session.scalars(
            select(InboxDelivery)
            .where(InboxDelivery.channel_id == found.id)
            .order_by(InboxDelivery.received_at.desc())
            .limit(20)
        )
    )
    return render_template(
        "integrations/channel.html",
        channel=found,
        adapter=adapter_for(found.kind),
        url=hook_url(found),
        steps=adapter_for(found.kind).setup_steps(hook_url(found)),
        mappings=channel_service.mappings_of(found.id),
        mapping_form=mapping_form,
        settings_form=settings_form,
        secret_form=SecretForm(),
        rotate_form=RotateForm(),
        credentials_form=CredentialsForm(),
        upload_form=UploadForm(),
        counts=channel_service.inbox_counts(found.id),
        progress=inbox_progress(found.id).as_json(),
        attention=attention,
        recent=recent,
        orders=_orders_of(attention + recent),
        has_order_page="orders.order" in current_app.view_functions,
        spend=channel_service.spend_rows(found.id, limit=14),
        categories=CATEGORY_LABELS,
    )


@bp.route("/<int:channel_id>/progress")
@login_required
@requires(roles.CHANNELS_VIEW)
def channel_progress(channel_id: int) -> ResponseReturnValue:
    """The channel page's live figures: backlog, drain rate, oldest waiting delivery (polled as JSON)."""
    found = get_or_404(Channel, channel_id)
    return jsonify(inbox_progress(found.id).as_json())


def _orders_of(rows: list[InboxDelivery]) -> dict[int, Order]:
    ids = {row.order_id for row in rows if row.order_id is not None}
    if not ids:
        return {}
    return {order.id: order for order in db.session.scalars(select(Order).where(Order.id.in_(ids)))}


@bp.route("/<int:channel_id>/settings", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def update_channel(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    form = ChannelSettingsForm()
    if form.validate_on_submit():
        try:
            channel_service.update_channel(
                found,
                ChannelSettings(
                    name=form.name.data or "",
                    currency=form.currency.data or "",
                    fee_percent=form.fee_percent.data or "0",
                    fee_fixed=channel_service.read_amount(form.fee_fixed.data, form.currency.data or ""),
                    price_tolerance_percent=form.price_tolerance.data or "0",
                    status=form.status.data or "active",
                    settings=dict(found.settings or {}),
                ),
            )
        except ChannelError as error:
            flash(str(error), "error")
        else:
            flash(_("Channel saved."), "info")
    else:
        flash(_("Check the channel's settings."), "error")
    return redirect(url_for("integrations.channel", channel_id=channel_id))


@bp.route("/<int:channel_id>/secret", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def set_secret(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    form = SecretForm()
    if form.validate_on_submit():
        try:
            channel_service.set_secret(
                found, form.secret.data or "", overlap_hours=form.overlap_hours.data or 0
            )
        except ChannelError as error:
            flash(str(error), "error")
        else:
            flash(_("Secret replaced."), "info")
    else:
        flash(_("Paste the secret the platform shows (8 to 200 characters)."), "error")
    return redirect(url_for("integrations.channel", channel_id=channel_id))


@bp.route("/<int:channel_id>/credentials", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def set_credentials(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    fields = adapter_for(found.kind).credential_fields
    if not fields:
        abort(404)
    form = CredentialsForm()
    if form.validate_on_submit():
        hours = form.overlap_hours.data if form.overlap_hours.data is not None else 0
        try:
            channel_service.set_credentials(found, form.credentials(fields), overlap_hours=hours)
        except ChannelError as error:
            flash(str(error), "error")
        else:
            flash(
                _("Credentials saved; the previous ones are accepted for %(n)s more hours.", n=hours), "info"
            )
    else:
        flash(_("Check the credentials."), "error")
    return redirect(url_for("integrations.channel", channel_id=channel_id))


@bp.route("/<int:channel_id>/secret/rotate", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def rotate_secret(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    if not adapter_for(found.kind).takes_webhooks:
        abort(404)
    form = RotateForm()
    hours = (
        form.overlap_hours.data
        if form.overlap_hours.data is not None
        else channel_service.DEFAULT_OVERLAP_HOURS
    )
    try:
        channel_service.rotate_secret(found, overlap_hours=hours)
    except ChannelError as error:
        flash(str(error), "error")
    else:
        flash(
            _(
                "New secret generated; the old one is accepted for %(n)s more hours. Reveal the new one and "
                "give it to the platform.",
                n=hours,
            ),
            "info",
        )
    return redirect(url_for("integrations.channel", channel_id=channel_id))


@bp.route("/<int:channel_id>/secret/reveal", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def reveal_secret(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    try:
        return jsonify({"value": channel_service.reveal_secret(found)})
    except ChannelError as error:
        return jsonify({"message": str(error)}), 409


@bp.route("/<int:channel_id>/mappings", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def add_mapping(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    form = MappingForm()
    if form.validate_on_submit():
        try:
            channel_service.add_mapping(
                found, form.ref_kind.data or "sku", form.external_ref.data or "", form.plan_id.data or 0
            )
        except ChannelError as error:
            flash(str(error), "error")
        else:
            held = channel_service.inbox_counts(found.id)["held"]
            flash(
                _("Mapped %(ref)s.", ref=form.external_ref.data)
                + (" " + _("%(n)s held deliveries can be replayed now.", n=held) if held else ""),
                "info",
            )
    else:
        flash(_("Give the external SKU or id and choose a plan."), "error")
    return redirect(url_for("integrations.channel", channel_id=channel_id))


@bp.route("/<int:channel_id>/mappings/<int:mapping_id>/delete", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def delete_mapping(channel_id: int, mapping_id: int) -> ResponseReturnValue:
    mapping = get_or_404(SkuMapping, mapping_id)
    if mapping.channel_id != channel_id:
        abort(404)
    channel_service.remove_mapping(mapping)
    flash(_("Mapping removed."), "info")
    return redirect(url_for("integrations.channel", channel_id=channel_id))


@bp.route("/<int:channel_id>/replay-held", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def replay_held(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    count = inbox.replay_held(found)
    flash(_("%(n)s held deliveries replayed.", n=count), "info")
    return redirect(url_for("integrations.channel", channel_id=channel_id))


@bp.route("/<int:channel_id>/orders-upload", methods=["POST"])
@login_required
@requires(roles.ORDERS_MANAGE)
def upload_orders(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    form = UploadForm()
    if not form.validate_on_submit():
        flash(_("Choose a CSV file."), "error")
        return redirect(url_for("integrations.channel", channel_id=channel_id))
    try:
        result = csv_upload.upload_orders_csv(found, read_capped(form.file.data.stream, "order_csv"))
    except ChannelError as error:
        flash(str(error), "error")
    else:
        flash(
            _(
                "%(new)s orders received, %(old)s seen before, %(bad)s rows refused.",
                new=result.stored,
                old=result.repeated,
                bad=len(result.errors),
            ),
            "info",
        )
        for line_no, message in result.errors[:20]:
            flash(_("Row %(n)s: %(m)s", n=line_no, m=message), "error")
    return redirect(url_for("integrations.channel", channel_id=channel_id))


# ---------------------------------------------------------------- the inbox


@bp.route("/<int:channel_id>/inbox")
@login_required
@requires(roles.CHANNELS_VIEW)
def channel_inbox(channel_id: int) -> ResponseReturnValue:
    found = get_or_404(Channel, channel_id)
    status = request.args.get("status", "")
    statement = select(InboxDelivery).where(InboxDelivery.channel_id == found.id)
    if status in INBOX_STATUSES:
        statement = statement.where(InboxDelivery.status == status)
    rows = list(db.session.scalars(statement.order_by(InboxDelivery.received_at.desc()).limit(INBOX_PAGE)))
    return render_template(
        "integrations/inbox.html",
        channel=found,
        rows=rows,
        status=status,
        statuses=INBOX_STATUSES,
        counts=channel_service.inbox_counts(found.id),
        orders=_orders_of(rows),
        has_order_page="orders.order" in current_app.view_functions,
    )


@bp.route("/dead-letters")
@login_required
@requires(roles.CHANNELS_VIEW)
def dead_letters() -> ResponseReturnValue:
    rows = list(
        db.session.scalars(
            select(InboxDelivery)
            .where(InboxDelivery.status.in_(("dead", "failed", "held", "invalid")))
            .order_by(InboxDelivery.received_at.desc())
            .limit(INBOX_PAGE)
        )
    )
    names = {c.id: c.name for c in channel_service.list_channels()}
    return render_template("integrations/dead_letters.html", rows=rows, names=names)


@bp.route("/inbox/<int:inbox_delivery_id>")
@login_required
@requires(roles.CHANNELS_VIEW)
def inbox_delivery(inbox_delivery_id: int) -> ResponseReturnValue:
    row = get_or_404(InboxDelivery, inbox_delivery_id)
    found = get_or_404(Channel, row.channel_id)
    body = bytes(row.body)
    return render_template(
        "integrations/inbox_delivery.html",
        row=row,
        channel=found,
        body=body[:200_000].decode("utf-8", errors="replace"),
        truncated=len(body) > 200_000,
        orders=_orders_of([row]),
        has_order_page="orders.order" in current_app.view_functions,
    )


@bp.route("/inbox/<int:inbox_delivery_id>/replay", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def replay_delivery(inbox_delivery_id: int) -> ResponseReturnValue:
    row = get_or_404(InboxDelivery, inbox_delivery_id)
    if inbox.replay(row, reason=request.form.get("reason", "")):
        flash(_("Delivery replayed."), "info")
    else:
        flash(_("Only held, failed, dead, skipped, waiting or invalid deliveries can be replayed."), "error")
    return redirect(url_for("integrations.inbox_delivery", inbox_delivery_id=inbox_delivery_id))


# ---------------------------------------------------------------- channel spend


@bp.route("/spend")
@login_required
@requires(roles.CHANNELS_VIEW)
def spend() -> ResponseReturnValue:
    form, upload_form = SpendForm(), SpendUploadForm()
    form.channel_id.choices = upload_form.channel_id.choices = _channel_choices()
    names = {c.id: c.name for c in channel_service.list_channels()}
    return render_template(
        "integrations/spend.html",
        rows=channel_service.spend_rows(),
        names=names,
        form=form,
        upload_form=upload_form,
        categories=CATEGORY_LABELS,
    )


@bp.route("/spend", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def add_spend() -> ResponseReturnValue:
    form = SpendForm()
    form.channel_id.choices = _channel_choices()
    if form.validate_on_submit():
        try:
            channel_service.add_spend(
                SpendEntry(
                    form.channel_id.data or 0,
                    form.day.data,
                    channel_service.read_amount(form.amount.data, form.currency.data or "CNY"),
                    form.currency.data or "CNY",
                    form.category.data or "other",
                    form.note.data or "",
                )
            )
        except ChannelError as error:
            flash(str(error), "error")
        else:
            flash(_("Spend recorded."), "info")
    else:
        flash(_("Give a channel, a day and an amount."), "error")
    return redirect(url_for("integrations.spend"))


@bp.route("/spend/upload", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def upload_spend() -> ResponseReturnValue:
    form = SpendUploadForm()
    form.channel_id.choices = _channel_choices()
    if not form.validate_on_submit():
        flash(_("Choose a CSV file."), "error")
        return redirect(url_for("integrations.spend"))
    try:
        result = channel_service.import_spend_csv(form.file.data.read(), form.channel_id.data or None)
    except ChannelError as error:
        flash(str(error), "error")
    else:
        if result.errors:
            flash(_("Nothing was imported: fix these rows and upload again."), "error")
            for line_no, message in result.errors[:20]:
                flash(_("Row %(n)s: %(m)s", n=line_no, m=message), "error")
        else:
            flash(_("%(n)s spend rows imported.", n=result.added), "info")
    return redirect(url_for("integrations.spend"))


@bp.route("/spend/<int:spend_id>/delete", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def delete_spend(spend_id: int) -> ResponseReturnValue:
    channel_service.remove_spend(get_or_404(ChannelSpend, spend_id))
    flash(_("Spend entry removed."), "info")
    return redirect(url_for("integrations.spend"))


# ---------------------------------------------------------------- outbound webhooks


@bp.route("/webhooks")
@login_required
@requires(roles.CHANNELS_VIEW)
def endpoints() -> ResponseReturnValue:
    form = EndpointForm()
    form.event_types.choices = [("*", _("every event"))] + [(e, e) for e in outbound.EVENT_TYPES]
    return render_template("integrations/endpoints.html", endpoints=outbound.list_endpoints(), form=form)


@bp.route("/webhooks", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def new_endpoint() -> ResponseReturnValue:
    form = EndpointForm()
    if not form.validate_on_submit():
        flash(_("Give the endpoint's URL and choose its events."), "error")
        return redirect(url_for("integrations.endpoints"))
    try:
        endpoint, _secret = outbound.create_endpoint(
            form.url.data or "", list(form.event_types.data or []), form.description.data or ""
        )
    except EndpointError as error:
        flash(str(error), "error")
        return redirect(url_for("integrations.endpoints"))
    flash(_("Endpoint added. Reveal its signing secret to verify our signatures."), "info")
    return redirect(url_for("integrations.endpoint", endpoint_id=endpoint.id))


@bp.route("/webhooks/<int:endpoint_id>")
@login_required
@requires(roles.CHANNELS_VIEW)
def endpoint(endpoint_id: int) -> ResponseReturnValue:
    found = get_or_404(WebhookEndpoint, endpoint_id)
    deliveries = outbound.deliveries_of(found.id)
    return render_template(
        "integrations/endpoint.html",
        endpoint=found,
        deliveries=deliveries,
        attempts=outbound.attempts_of([d.id for d in deliveries]),
    )


@bp.route("/webhooks/<int:endpoint_id>/status", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def endpoint_status(endpoint_id: int) -> ResponseReturnValue:
    found = get_or_404(WebhookEndpoint, endpoint_id)
    outbound.set_endpoint_status(found, request.form.get("active") == "1", request.form.get("reason", ""))
    flash(_("Endpoint enabled.") if found.is_active else _("Endpoint disabled."), "info")
    return redirect(url_for("integrations.endpoint", endpoint_id=endpoint_id))


@bp.route("/webhooks/<int:endpoint_id>/secret/reveal", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def reveal_endpoint_secret(endpoint_id: int) -> ResponseReturnValue:
    return jsonify({"value": outbound.reveal_endpoint_secret(get_or_404(WebhookEndpoint, endpoint_id))})


@bp.route("/webhooks/<int:endpoint_id>/test", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def test_endpoint(endpoint_id: int) -> ResponseReturnValue:
    outbound.send_test(get_or_404(WebhookEndpoint, endpoint_id))
    flash(_("Test event sent; see its attempt below."), "info")
    return redirect(url_for("integrations.endpoint", endpoint_id=endpoint_id))


@bp.route("/webhooks/deliveries/<int:webhook_delivery_id>/redeliver", methods=["POST"])
@login_required
@requires(roles.CHANNELS_MANAGE)
def redeliver(webhook_delivery_id: int) -> ResponseReturnValue:
    delivery = get_or_404(OutboundDelivery, webhook_delivery_id)
    endpoint_id = delivery.endpoint_id
    outbound.redeliver(delivery)
    flash(_("Redelivery queued."), "info")
    return redirect(url_for("integrations.endpoint", endpoint_id=endpoint_id))
