"""CLI commands: export (see the module docstring of cli.app for conventions)."""

from genimg_export.cli.app import app, command  # noqa: F401
