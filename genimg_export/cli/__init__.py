"""genimg-export command line. Each command module registers its commands on ``app``."""

from genimg_export.cli import (  # noqa: F401  (imported to register commands)
    bench_commands,
    export_commands,
    parity_commands,
    serve_commands,
    triton_commands,
    zoo_commands,
)
from genimg_export.cli.app import app


def main() -> None:
    app()
