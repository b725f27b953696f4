"""The `digestbot` command. The one place that turns a BotError into a message, a hint and an exit code.

`base` holds the Typer app; the commands register on it from `running` (demo, run, once, check-config), `explore`
(parse, rank, preview) and `admin` (sources, status, outbox, resubscribe) and `feedback` (feedback, feedback reset).
"""

from __future__ import annotations

import sys

from rich.markup import escape

# Importing the command modules registers their commands, in the order `digestbot --help` lists them.
from bot.cli import running  # noqa: F401

# isort: split
from bot.cli import explore  # noqa: F401

# isort: split
from bot.cli import admin  # noqa: F401

# isort: split
from bot.cli import feedback  # noqa: F401
from bot.cli.base import _state, app, err
from bot.errors import BotError, ConfigError

__all__ = ["app", "main"]


GLOBAL_FLAGS = ("--debug", "--verbose", "-v")


def hoist_global_flags(argv: list[str]) -> list[str]:
    """`digestbot check-config -v` as well as `digestbot -v check-config`: the global flags are moved in front of
    the subcommand, wherever they were typed (up to a `--`, after which everything is an argument)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [arg for arg in argv[:end] if arg in GLOBAL_FLAGS]
    return flags + [arg for arg in argv[:end] if arg not in GLOBAL_FLAGS] + argv[end:]


def main() -> None:
    """Entry point: run the command; a BotError becomes "error: ..." plus a hint, exit 1."""
    try:
        app(args=hoist_global_flags(sys.argv[1:]), prog_name="digestbot")
    except BotError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        if isinstance(exc, ConfigError) and exc.problems != [exc.message]:
            for problem in exc.problems:
                err.print(f"  - {problem}", markup=False)
        if exc.hint:
            err.print(f"[dim]hint:[/] {escape(exc.hint)}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
