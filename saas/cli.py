"""The `quanyi` console script: the Flask CLI of the app, with the platform commands."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from saas import jobs


def _create_app() -> Flask:
    from saas.app import create_app

    return create_app()


class QuanyiGroup(FlaskGroup):
    """The Flask CLI group whose commands are writers on SQLite from their first statement."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command under `write_intent`.

        A command that read, then wrote after a job in this process (or the web server) committed, would
        fail with "database is locked". `quanyi run` serves pages from threads of its own, which start
        without the intent.
        """
        from saas.extensions import write_intent

        with write_intent():
            return super().invoke(ctx)


@click.group(cls=QuanyiGroup, create_app=_create_app, add_version_option=False)
def cli() -> None:
    """Quanyi: the back office for merchants who sell digital rights."""


@click.command("worker")
@click.option(
    "--queues", default=",".join(jobs.QUEUES), show_default=True, help="Queues to listen on, in order."
)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--no-periodic", is_flag=True, help="Do not enqueue the periodic jobs from this worker.")
@with_appcontext
def worker_command(queues: str, burst: bool, no_periodic: bool) -> None:
    """Run an RQ worker (needs REDIS_URL); it also schedules the periodic jobs."""
    from rq import Queue

    from saas.periodic import start_in_process_scheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["JOBS_MODE"] != "rq":
        raise click.ClickException(
            "set REDIS_URL to run a worker; without it jobs run inside the web process"
        )
    jobs._worker_app.append(app)
    connection = jobs.redis_connection(app)
    stop: threading.Event | None = None
    if not no_periodic and not burst:
        stop = start_in_process_scheduler(app)
    try:
        jobs.stopping_worker_class()(
            [Queue(name, connection=connection) for name in queues.split(",")], connection=connection
        ).work(burst=burst, with_scheduler=True)
    finally:
        if stop is not None:
            stop.set()


def init_app(app: Flask) -> None:
    """Attach the platform commands to the app's CLI."""
    app.cli.add_command(worker_command)


def main() -> None:
    """Entry point of the `quanyi` console script."""
    os.environ.setdefault("FLASK_APP", "saas.app:create_app")
    sys.exit(cli())
