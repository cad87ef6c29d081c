"""CLI: `quanyi inventory import` (with a progress bar) and `quanyi keys rotate-master`."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from catalog import inventory, keyring
from catalog.fileformats import FileFormatError
from catalog.importing import ImportFailed
from catalog.services import CatalogError
from saas import crypto
from saas.extensions import db
from tenants.models import Tenant
from tenants.scoping import tenant_bound


@click.group("inventory")
def inventory_group() -> None:
    """Card-key inventory."""


@inventory_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "tenant_slug", required=True, help="The tenant's slug.")
@click.option("--right", "right_id", required=True, type=int, help="The id of the card-key right.")
@click.option("--supplier", required=True, help="Who sold the keys.")
@click.option("--unit-cost", required=True, help="Cost per key, e.g. 12.50.")
@click.option("--currency", default="", help="ISO code of the cost (default: the right's).")
@click.option("--expires", "expires_on", default=None, help="Default expiry of the batch, YYYY-MM-DD.")
@click.option("--encoding", default=None, help="Text encoding (default: detected), e.g. gb18030, utf-8.")
@click.option(
    "--delimiter", default=None, help="Column separator (default: detected); '' for one key per line."
)
@click.option("--header/--no-header", default=None, help="Whether the first row names the columns.")
@click.option("--mapping", default=None, help="Columns: 'card=1,secret=2,expires=3' or header names.")
@click.option("--sheet", default=None, help="XLSX sheet name (default: the first).")
@click.option(
    "--on-reject",
    type=click.Choice(["skip", "abort"]),
    default="skip",
    show_default=True,
    help="Skip rejected rows, or import nothing when any row is rejected.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the rejection report (default: FILE.rejections.csv).",
)
@with_appcontext
def import_command(
    file: Path,
    tenant_slug: str,
    right_id: int,
    supplier: str,
    unit_cost: str,
    currency: str,
    expires_on: str | None,
    encoding: str | None,
    delimiter: str | None,
    header: bool | None,
    mapping: str | None,
    sheet: str | None,
    on_reject: str,
    report_path: Path | None,
) -> None:
    """Import a card-key file into a new batch, atomically, with a progress bar."""
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
    if tenant is None:
        raise click.ClickException(f"no tenant {tenant_slug!r}")
    report_path = report_path or file.with_name(file.name + ".rejections.csv")
    options: dict[str, Any] = {
        "encoding": encoding,
        "delimiter": _delimiter(delimiter),
        "has_header": header,
        "mapping": mapping,
        "sheet": sheet,
        "on_reject": on_reject,
    }
    with tenant_bound(tenant.id), click.progressbar(length=100, label=f"Importing {file.name}") as bar:
        done = [0]

        def progress(percent: float, message: str) -> None:
            step = int(percent) - done[0]
            if step > 0:
                bar.update(step)
                done[0] += step

        try:
            outcome = inventory.import_local_file(
                file,
                right_id=right_id,
                supplier=supplier,
                unit_cost=unit_cost,
                currency=currency,
                expires_on=expires_on,
                options={k: v for k, v in options.items() if v is not None},
                report_path=report_path,
                progress=progress,
                imported_by=f"cli {getpass.getuser()}@{socket.gethostname()}",
            )
        except ImportFailed as failure:
            _echo_counts(failure.outcome.counts())
            if failure.outcome.rejected:
                click.echo(f"Rejection report: {report_path}")
            raise click.ClickException(str(failure)) from failure
        except (CatalogError, FileFormatError) as error:
            raise click.ClickException(str(error)) from error
    click.echo(f"Batch {outcome.batch_id} imported.")
    _echo_counts(outcome.counts())
    if outcome.rejected:
        click.echo(f"Rejection report: {report_path}")


def _delimiter(value: str | None) -> str | None:
    if value is None:
        return None
    return {"tab": "\t", "\\t": "\t", "none": "", "line": ""}.get(value.lower(), value)


def _echo_counts(counts: dict[str, int]) -> None:
    for name, value in counts.items():
        click.echo(f"  {name.replace('_', ' '):<20} {value:>12,}")


@click.group("keys")
def keys_group() -> None:
    """Encryption keys."""


@keys_group.command("rotate-master")
@click.option("--old-key", default=None, help="The previous master key (default: QUANYI_MASTER_KEY_OLD).")
@with_appcontext
def rotate_master_command(old_key: str | None) -> None:
    """Rewrap every tenant's data keys under the current QUANYI_MASTER_KEY."""
    try:
        old = crypto.decode_master_key(old_key or current_app.config.get("QUANYI_MASTER_KEY_OLD"))
        new = crypto.decode_master_key(current_app.config.get("QUANYI_MASTER_KEY"))
    except crypto.CryptoError as error:
        raise click.ClickException(
            f"{error} (give the old key with --old-key or QUANYI_MASTER_KEY_OLD)"
        ) from error
    if old == new:
        raise click.ClickException("the old and the new master key are the same")
    try:
        counts = keyring.rotate_master_key(old, new)
    except crypto.CryptoError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"Rewrapped {counts['rewrapped']} data keys; {counts['already_current']} were already current."
    )
