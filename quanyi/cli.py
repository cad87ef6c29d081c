"""The `quanyi` console script: the platform's CLI group, handed the app factory."""

from __future__ import annotations

import os
import sys

from quanyi.app import create_app
from saas.cli import make_cli

cli = make_cli(create_app)


def main() -> None:
    """Entry point of the `quanyi` console script."""
    os.environ.setdefault("FLASK_APP", "quanyi.app:create_app")
    sys.exit(cli())
