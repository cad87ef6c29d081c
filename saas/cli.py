"""The platform CLI: the `quanyi` command group (handed the factory by `quanyi.cli`), `quanyi worker`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from rq import Queue

from saas import jobs
from saas.extensions import write_intent
from saas.periodic import start_in_process_scheduler


class QuanyiGroup(FlaskGroup):
    """The Flask CLI group whose commands are writers on SQLite from their first statement."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command under `write_intent`.

        A command that read, then wrote after a job in this process (or the web server) committed, would
        fail with "database is locked". `quanyi run` serves pages from threads of its own, which start
        without the intent.
        """
        with write_intent():
            return super().invoke(ctx)


def make_cli(create_app: Callable[[], Flask]) -> click.Group:
    """Return the `quanyi` command group, which builds its app with `create_app` (the composition root)."""
    return QuanyiGroup(
        name="quanyi",
        help="Quanyi: the back office for merchants who sell digital rights.",
        create_app=create_app,
        add_version_option=False,
    )


@click.command("worker")
@click.option(
    "--queues", default=",".join(jobs.QUEUES), show_default=True, help="Queues to listen on, in order."
)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--no-periodic", is_flag=True, help="Do not enqueue the periodic jobs from this worker.")
@with_appcontext
def worker_command(queues: str, burst: bool, no_periodic: bool) -> None:
    """Run an RQ worker (needs REDIS_URL); it also schedules the periodic jobs."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["JOBS_MODE"] != "rq":
        raise click.ClickException(
            "set REDIS_URL to run a worker; without it jobs run inside the web process"
        )
    jobs.register_worker_app(app)  # the work horses RQ forks run their jobs in this app
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
