"""`digestbot feedback`: what readers rated and what it taught the bot; `feedback reset` forgets one reader's."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli.base import ConfigOption, app, out
from bot.config import DEFAULT_CONFIG, Config, load_config
from bot.errors import BotError

feedback_app = typer.Typer(help="Readers' 👍 / 👎: list them and what was learned; forget a reader's.",
                           invoke_without_command=True, no_args_is_help=False, rich_markup_mode=None)
app.add_typer(feedback_app, name="feedback")

RecipientOption = Annotated[str | None, typer.Option(
    "--recipient", "-r", help="A subscriber's name or email, or a Slack channel (its name or ID).")]


def _identity(cfg: Config, known: list[tuple[str, str]], who: str) -> tuple[str, str]:
    """(channel, recipient) for what a person typed: a configured recipient's name, email or channel, or a
    recipient that only the ratings still name."""
    from bot.outbox.keys import Recipient, recipient_identity

    found = set()
    everyone: list[Recipient] = [*cfg.subscribers, *cfg.slack_channels]
    for recipient in everyone:
        name, channel, address = recipient_identity(recipient)
        if who in (name, address) or who == getattr(recipient, "channel", None):
            found.add((str(channel), name))
    found |= {(channel, name) for channel, name in known if name == who}
    if len(found) > 1:
        raise BotError(f"{who!r} names more than one recipient: {', '.join(f'{c}:{n}' for c, n in sorted(found))}",
                       hint="Use the subscriber's email or the Slack channel's ID.")
    if not found:
        raise BotError(f"no recipient {who!r} in the config or among the ratings",
                       hint="`digestbot feedback` lists every recipient with ratings.")
    return found.pop()


def _learned(cfg: Config, store: Any, channel: str, name: str) -> dict[str, dict[str, Any]]:
    """Per profile: how many ratings, and the words they weigh most for and against, over the papers of the
    last `bot.max_age` (the words' rarity) and the rated ones."""
    from bot.app import utcnow
    from bot.scoring.feedback import PaperVectors, Taste

    ratings = store.ratings_of(channel, name)
    items = store.get_items([r.item_id for r in ratings])
    now = utcnow()
    corpus = store.items_first_seen_between(now - cfg.bot.max_age_delta, now)
    vectors = PaperVectors(corpus, items.values())
    learned = {}
    for profile in sorted({r.profile for r in ratings}):
        rated = [(items[r.item_id], r.rating) for r in ratings if r.profile == profile and r.item_id in items]
        more, less = Taste(rated, vectors).leanings() if rated else ([], [])
        mine = [r for r in ratings if r.profile == profile]
        learned[profile] = {"likes": sum(r.rating > 0 for r in mine), "dislikes": sum(r.rating < 0 for r in mine),
                            "more_of": more, "less_of": less}
    return learned


@feedback_app.callback()
def feedback(ctx: typer.Context, config: ConfigOption = Path(DEFAULT_CONFIG), recipient: RecipientOption = None,
             json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Every recipient with ratings; with --recipient, their ratings and what was learned from them."""
    ctx.obj = config
    if ctx.invoked_subcommand is not None:
        return
    from bot.store import Store

    cfg = load_config(config)
    with Store.open(cfg.bot.database) as store:
        counts = store.rating_counts()
        if recipient is None:
            rows: list[dict[str, Any]] = [
                {"channel": c.channel, "recipient": c.recipient, "likes": c.likes, "dislikes": c.dislikes,
                 "last_rated": c.last_rated_at.isoformat()} for c in counts]
            if json_out:
                for row in rows:
                    sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
                return
            table = Table("recipient", "via", "👍", "👎", "last rated", title=f"{len(rows)} with ratings")
            for row in rows:
                table.add_row(escape(row["recipient"]), row["channel"], str(row["likes"]), str(row["dislikes"]),
                              row["last_rated"][:16].replace("T", " "))
            out.print(table)
            if not rows:
                out.print("[dim]Nobody has rated a paper yet. Ratings come from the 👍 / 👎 links in digests "
                          "(bot.public_url and bot.http_port must be set).[/]")
            return
        channel, name = _identity(cfg, [(c.channel, c.recipient) for c in counts], recipient)
        ratings = store.ratings_of(channel, name)
        titles = {item_id: item.title for item_id, item in store.get_items([r.item_id for r in ratings]).items()}
        learned = _learned(cfg, store, channel, name)
    rated: list[dict[str, Any]] = [
        {"id": r.item_id, "rating": r.rating, "profile": r.profile, "rated_at": r.rated_at.isoformat(),
         "title": titles.get(r.item_id)} for r in ratings]
    if json_out:
        sys.stdout.write(json.dumps({"channel": channel, "recipient": name, "ratings": rated, "learned": learned},
                                    ensure_ascii=False, indent=2) + "\n")
        return
    table = Table("rated", "", "profile", "paper", title=f"{name} ({channel}): {len(rated)} ratings")
    for row in rated:
        table.add_row(row["rated_at"][:16].replace("T", " "), "👍" if row["rating"] > 0 else "👎",
                      escape(row["profile"]), escape(row["title"] or f"{row['id']} (no longer kept)"))
    out.print(table)
    for profile, what in learned.items():
        out.print(f"{profile}: {what['likes']} 👍, {what['dislikes']} 👎", markup=False)
        if what["more_of"]:
            out.print("  more of: " + ", ".join(what["more_of"]), markup=False)
        if what["less_of"]:
            out.print("  less of: " + ", ".join(what["less_of"]), markup=False)


@feedback_app.command("reset")
def feedback_reset(ctx: typer.Context, recipient: Annotated[str, typer.Option(
                       "--recipient", "-r", help="A subscriber's name or email, or a Slack channel.")],
                   config: Annotated[Path | None, typer.Option("--config", "-c", help="Config file (TOML).")] = None,
                   ) -> None:
    """Forget every rating of one recipient: their next digest is what their profiles alone give."""
    from bot.store import Store

    cfg = load_config(config or ctx.obj)
    with Store.open(cfg.bot.database) as store:
        channel, name = _identity(cfg, [(c.channel, c.recipient) for c in store.rating_counts()], recipient)
        count = store.forget_ratings(channel, name)
    out.print(f"forgot {count} rating{'s' if count != 1 else ''} of {name} ({channel}); the next digest is "
              "ranked by the profiles alone", markup=False)
