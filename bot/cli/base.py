"""The `digestbot` command's frame: the Typer app, its consoles, the global flags and the shared options."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand

from bot.errors import BotError

if TYPE_CHECKING:
    pass


# Plain Click help (rich_markup_mode=None): the rich one labels every flag "<bool>" though it takes no value.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Watches paper listings, scores what is new against your keyword profiles, "
                       "sends email digests, Slack posts and alerts.")
class PlainUsage(TyperCommand):
    """`Usage: digestbot parse [OPTIONS] FILE_OR_URL`, as Unix tools write it, not `{FILE_OR_URL}`."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # typer vendors its own click Context
        return [piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
                for piece in super().collect_usage_pieces(ctx)]


# Piped or captured (no terminal to measure), tables get room enough not to cut names and dates.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one greppable line

ONCE_WAIT_SECONDS = 120.0  # on SQLite, how long `once` waits for another `once` on the same file
_state = {"debug": False}

ConfigOption = Annotated[Path, typer.Option("--config", "-c", envvar="DIGESTBOT_CONFIG",
                                            help="Config file (TOML).")]


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of short errors.")] = False,
          verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each stage does.")] = False) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not debug:  # their per-tick and per-migration chatter drowns out what digestbot says
        for noisy in ("alembic", "httpx", "aiosmtpd", "mail.log"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # It warns on every tick that finds the previous cycle still running; the daemon says that itself.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)


def _run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(coro_fn())


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BotError(f"--now {value!r} is not an ISO-8601 time",
                       hint="Use e.g. 2026-11-23T07:05:00+01:00 (no offset means UTC).") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
