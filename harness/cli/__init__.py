"""The `harness` command line: thin typer commands over the library."""

from __future__ import annotations

import os

from harness.cli import attack_track, grade, runs, store, zoo  # noqa: F401 - importing registers the commands
from harness.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    # TensorFlow's C++ start-up chatter is not for users; HARNESS users may override it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    app()
