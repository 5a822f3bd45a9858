"""``supertask`` through typer: every command module registered on :data:`app`, errors mapped
to messages and exit codes. :mod:`supertask.entry` comes here for all but its fast paths."""

from __future__ import annotations

import importlib
import sys

from supertask.cli.app import app
from supertask.errors import SupertaskError

# Each module registers its commands on `app` when imported; `--help` lists them in this order.
for _module in ("core", "admin", "live", "cluster", "worker", "workers", "web"):
    importlib.import_module(f"supertask.cli.{_module}")


def _only_the_command_asked_for(argv: list[str]) -> None:
    """Keep on ``app`` only the command that ``argv`` names, when it names one.

    typer turns every registered function into a click command on each start
    (``inspect.signature`` and ``get_type_hints`` of every parameter: ~40 ms of a
    one-shot ``supertask run -- cmd:true``, docs/benchmarks.md). ``supertask --help``,
    an unknown command and shell completion still see them all."""
    if not argv or argv[0].startswith("-"):
        return
    from typer.main import get_command_name

    commands = [c for c in app.registered_commands
                if (c.name or get_command_name(c.callback.__name__ if c.callback else "")) == argv[0]]
    groups = [g for g in app.registered_groups if g.name == argv[0]]
    if commands or groups:
        app.registered_commands, app.registered_groups = commands, groups


def main() -> None:
    """Console-script entry point: map supertask errors to messages and exit codes."""
    _only_the_command_asked_for(sys.argv[1:])
    try:
        app()
    except SupertaskError as exc:
        from supertask.cli.output import error

        error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
