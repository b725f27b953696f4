"""Looking after a running bot: `sources`, `status`, `outbox` (and `outbox retry`), `resubscribe`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.config import DEFAULT_CONFIG, load_config
from bot.errors import BotError

if TYPE_CHECKING:
    pass
from bot.cli.base import ConfigOption, PlainUsage, app, out


@app.command()
def sources(config: ConfigOption = Path(DEFAULT_CONFIG),
            json_out: Annotated[bool, typer.Option("--json", help="One JSON object per source.")] = False) -> None:
    """Every configured source and its health: last success, last error, failures in a row, items seen."""
    from bot.report import print_sources, source_rows
    from bot.store import Store

    cfg = load_config(config)
    store = Store.open(cfg.bot.database)
    try:
        rows = source_rows(cfg, store)
    finally:
        store.close()
    if json_out:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        print_sources(out, rows)


@app.command()
def status(config: ConfigOption = Path(DEFAULT_CONFIG),
           json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """The last cycle, the next digests due, deliveries pending or failed, and sources failing."""
    from bot.app import utcnow
    from bot.report import print_status, status_report
    from bot.store import Store

    cfg = load_config(config)
    with Store.open(cfg.bot.database) as store:
        report = status_report(cfg, store, now=utcnow())
    if json_out:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        print_status(out, report)


outbox_app = typer.Typer(help="Deliveries that are pending, failed or unknown; re-queue one.",
                         invoke_without_command=True, no_args_is_help=False, rich_markup_mode=None)
app.add_typer(outbox_app, name="outbox")


@outbox_app.callback()
def outbox(ctx: typer.Context, config: ConfigOption = Path(DEFAULT_CONFIG),
           show_all: Annotated[bool, typer.Option("--all", help="Sent, expired and cancelled ones too.")] = False,
           limit: Annotated[int, typer.Option(help="At most N rows, newest first.")] = 50,
           json_out: Annotated[bool, typer.Option("--json", help="One JSON object per delivery.")] = False) -> None:
    """Pending, claimed, sending, failed and unknown deliveries (newest first)."""
    ctx.obj = config
    if ctx.invoked_subcommand is not None:
        return
    from bot.outbox.model import State
    from bot.report import delivery_rows, print_deliveries
    from bot.store import Store

    cfg = load_config(config)
    states = None if show_all else (State.PENDING, State.CLAIMED, State.SENDING, State.FAILED, State.UNKNOWN)
    with Store.open(cfg.bot.database) as store:
        rows = delivery_rows(store.deliveries(states, limit=limit))
    if json_out:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        print_deliveries(out, rows)


@outbox_app.command("retry", cls=PlainUsage)
def outbox_retry(ctx: typer.Context, delivery_id: Annotated[int, typer.Argument(metavar="ID")],
                 config: Annotated[Path | None, typer.Option("--config", "-c", help="Config file (TOML).")] = None,
                 ) -> None:
    """Re-queue a failed, unknown or expired delivery (and re-enable its destination if it was disabled)."""
    from bot.app import utcnow
    from bot.store import Store

    cfg = load_config(config or ctx.obj)
    with Store.open(cfg.bot.database) as store:
        row = store.get_delivery(delivery_id)
        if row is None:
            raise BotError(f"no delivery with id {delivery_id}", hint="`digestbot outbox --all` lists them.")
        if not store.requeue(delivery_id, now=utcnow()):
            raise BotError(f"delivery {delivery_id} is {row.state}; only failed, unknown or expired ones are retried",
                           hint="A pending delivery is sent on the next cycle by itself.")
        store.enable_destination(row.channel, row.address)
    out.print(f"delivery {delivery_id} ({row.kind} to {row.recipient} via {row.channel}) is queued again; "
              "the next cycle sends it", markup=False)


@app.command(cls=PlainUsage)
def resubscribe(address: Annotated[str, typer.Argument(metavar="ADDRESS", help="The email address to send to again.")],
                config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Undo an unsubscribe (an admin's explicit decision; readers can undo their own from the unsubscribed page).

    Editing the config never does this: an unsubscribe is the reader's, and outlives removing and re-adding them.
    """
    from bot.store import Store

    cfg = load_config(config)
    with Store.open(cfg.bot.database) as store:
        if not store.is_unsubscribed(address):
            raise BotError(f"{address} is not unsubscribed", hint="`digestbot status` shows who is.")
        store.resubscribe(address)
    out.print(f"{address} is subscribed again; its next digest is planned as usual", markup=False)
