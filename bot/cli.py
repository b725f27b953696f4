"""The `digestbot` command. The one place that turns a BotError into a message, a hint and an exit code."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

from bot.config import DEFAULT_CONFIG, Config, config_warnings, load_config, missing_secrets, redact_url
from bot.errors import BotError, ConfigError
from bot.models import ScoredItem

if TYPE_CHECKING:
    from bot.scoring import Matcher

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


@app.command()
def demo(out_dir: Annotated[Path, typer.Option("--out", help="Where to write the Maildir and digests.")] = Path(
        "demo-output")) -> None:
    """Run the whole pipeline on bundled sample pages, offline, and show the digest it sends."""
    from bot.demo import run_demo

    _run(lambda: run_demo(out_dir, out))


@app.command()
def run(config: ConfigOption = Path(DEFAULT_CONFIG),
        tick: Annotated[float, typer.Option(help="Seconds between scheduler ticks.")] = 60.0) -> None:
    """The daemon: refresh sources, send digests and alerts when due, reload the config when it changes."""
    from bot.scheduler import run_daemon

    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger().setLevel(logging.INFO)
    _run(lambda: run_daemon(config, tick_seconds=tick))


@app.command()
def once(config: ConfigOption = Path(DEFAULT_CONFIG),
         now: Annotated[str | None, typer.Option(help="Run as if the clock read this ISO-8601 time.")] = None,
         json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """One full cycle (fetch due sources, plan and send due deliveries), then exit."""
    from bot.app import App
    from bot.report import print_cycle, report_json

    cfg = load_config(config)
    when = _parse_now(now)

    async def go() -> Any:
        async with App(cfg) as runtime:
            if not err.is_terminal:  # a log or a pipe: the cycle's own log lines say what happens (-v)
                return await runtime.cycle(now=when)
            with err.status("starting") as status:  # on a terminal: what it is doing now, and how far

                def show(stage: str, done: int, total: int) -> None:
                    status.update(escape(f"{stage} ({done}/{total})" if total else stage))

                return await runtime.cycle(now=when, progress=show)

    from bot.lead import Leadership

    with Leadership.for_url(cfg.bot.database, purpose="once", wait=ONCE_WAIT_SECONDS):
        report = _run(go)
    if json_out:
        out.print_json(json.dumps(report_json(report)))
    else:
        print_cycle(out, report)


@app.command("check-config")
def check_config(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Validate the config: every problem is printed with its key; exit 1 if there is any."""
    from bot.scoring import check_profile

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        err.print(f"[bold red]{escape(str(config))}: {len(exc.problems)} problem(s)[/]")
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False)
        raise typer.Exit(1) from None
    secrets = missing_secrets(cfg)
    if secrets:
        err.print(f"[bold red]{escape(str(config))}: {len(secrets)} problem(s)[/]")
        for problem in secrets:
            err.print(f"  - {problem}", markup=False)
        err.print("[dim]hint:[/] Set them in the environment digestbot runs in (a systemd EnvironmentFile, "
                  "docker run -e ...); secrets never go in the config file.")
        raise typer.Exit(1)
    warnings = config_warnings(cfg)
    for name, profile in cfg.profiles.items():
        warnings.extend(check_profile(name, profile))
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    semantic_state, semantic_problem = _semantic_check(cfg)
    if semantic_problem is not None:
        err.print(f"[bold red]{escape(str(config))}: 1 problem(s)[/]")
        err.print(f"  - {semantic_problem}", markup=False)
        raise typer.Exit(1)
    out.print(f"{config}: OK — {len(cfg.sources)} source(s), {len(cfg.profiles)} profile(s), "
              f"{len(cfg.subscribers)} subscriber(s), {len(cfg.slack_channels)} Slack channel(s); "
              f"database {redact_url(cfg.bot.database)}; semantic similarity {semantic_state}", markup=False)


def _semantic_check(cfg: Config) -> tuple[str, str | None]:
    """What `bot.semantic` comes to on this install, and the problem when it is "on" and cannot run: the extra
    missing, or a model that does not load (tried here, as the daemon would). "auto" never loads the model."""
    from bot.scoring import semantic

    mode = cfg.bot.semantic
    if mode == "off":
        return "off", None
    if mode == "auto":
        return ("auto: on (extra installed)" if semantic.available()
                else f"auto: off, keywords only (extra not installed: {semantic.INSTALL})"), None
    reason = semantic.unavailable_reason()
    if reason is None:
        return "on (model loaded)", None
    return "on", (f"bot.semantic: \"on\", but {reason}. Install or repair it with {semantic.INSTALL} "
                  "(install a CPU build of torch first, see README), or set semantic = \"auto\" or \"off\" to "
                  "score with keywords only")


@app.command(cls=PlainUsage)
def parse(target: Annotated[str, typer.Argument(metavar="FILE_OR_URL", help="A saved page or a URL.")],
          kind: Annotated[str, typer.Option("--kind", "-k", help="Source kind, e.g. hf_papers, arxiv_feed.")],
          json_out: Annotated[bool, typer.Option("--json", help="One JSON object per item.")] = False,
          select: Annotated[list[str] | None, typer.Option(
              "--select", help="For kind css: KEY=SELECTOR (item, title, link, summary, date); repeat.")] = None,
          ) -> None:
    """Parse one page and print its items."""
    from bot.models import Source, SourceOptions
    from bot.sources.fetch import Fetcher
    from bot.sources.kinds import KINDS
    from bot.sources.parse import parse_page

    if kind not in KINDS:
        raise BotError(f"unknown kind {kind!r}", hint=f"Use one of: {', '.join(KINDS)}.")
    selectors: dict[str, str] = {}
    for pair in select or []:
        key, sep, css = pair.partition("=")
        if not sep or not css:
            raise BotError(f"--select {pair!r} is not KEY=SELECTOR",
                           hint="E.g. --select item=article --select title=h2")
        selectors[key.strip()] = css.strip()
    source = Source(name="cli", kind=kind, url=target, options=SourceOptions(announce_types=None, selectors=selectors))

    async def fetch() -> Any:
        async with Fetcher(os.environ.get("DIGESTBOT_USER_AGENT", "digestbot/0.1 (parse command)")) as fetcher:
            try:
                return await fetcher.fetch(source)
            except BotError as exc:  # the hints speak of a configured source; this is a one-off command
                exc.hint = exc.hint.replace("the source is retried on its next refresh", "try the command again")
                raise

    page = _run(fetch)
    items = parse_page(kind, page, source)
    if json_out:
        for item in items:
            sys.stdout.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
        return
    table = Table("id", "title", "published", "metrics", title=f"{len(items)} item(s) from {target}")
    for item in items:
        table.add_row(item.id, item.title, item.published.date().isoformat() if item.published else "",
                      " ".join(f"{k}={v}" for k, v in item.metrics.items()))
    out.print(table)


def _print_ranked(rows: list[ScoredItem], *, json_out: bool, with_profile: bool, title: str) -> None:
    if json_out:
        for s in rows:
            obj: dict[str, Any] = {"id": s.item.id, "score": round(s.score, 4),
                                   "reasons": [r.to_json() for r in s.reasons], "title": s.item.title}
            if with_profile:
                obj["profile"] = s.profile
            sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        return
    table = Table("score", "profile", "title", "why", title=title)
    for s in rows:
        table.add_row(f"{s.score:.2f}", s.profile, s.item.title, s.explain())
    out.print(table)


@app.command()
def rank(items: Annotated[Path, typer.Option("--items", help="JSON lines: id, title, abstract, ...")],
         config: ConfigOption = Path(DEFAULT_CONFIG),
         profile: Annotated[str | None, typer.Option(help="Score only this profile.")] = None,
         top: Annotated[int | None, typer.Option(help="At most N items per profile.")] = None,
         json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False) -> None:
    """Score items from a JSON-lines file and print them best first, with scores and reasons."""
    from bot.app import SEMANTIC_SWITCH
    from bot.scoring import compile_profiles, load_items_jsonl

    cfg = load_config(config)
    if profile is not None and profile not in cfg.profiles:
        raise ConfigError(f"no profile named {profile!r} in {config}",
                          hint=f"Profiles defined: {', '.join(sorted(cfg.profiles)) or 'none'}.")
    corpus = load_items_jsonl(items)
    matcher = compile_profiles(cfg.profiles, corpus=corpus, semantic=SEMANTIC_SWITCH[cfg.bot.semantic])
    ranked = matcher.rank_all(corpus, top=top, profiles=None if profile is None else [profile])
    rows = [s for name in ranked for s in ranked[name]]
    corpus_note = _corpus_note(matcher, f"the {len(corpus)} item(s) of {items}")
    if json_out:
        err.print(corpus_note, markup=False)
    _print_ranked(rows, json_out=json_out, with_profile=profile is None,
                  title=f"{len(rows)} match(es); {corpus_note}")


def _corpus_note(matcher: Matcher, corpus: str) -> str:
    """Which corpus the scores were measured against: description words' rarity and the centre of meaning come
    from it, so the same paper can score differently against another corpus (the bot's stored items)."""
    meaning = "meaning on" if matcher.semantic else "keywords only"
    return f"scored against {corpus} ({meaning})"


@app.command()
def preview(profile: Annotated[str, typer.Option(help="The profile to try.")],
            config: ConfigOption = Path(DEFAULT_CONFIG),
            days: Annotated[int, typer.Option(help="Look at items first seen in the last N days.")] = 7,
            top: Annotated[int, typer.Option(help="At most N matches.")] = 30,
            now: Annotated[str | None, typer.Option(help="Look back from this ISO-8601 time instead of now.")] = None,
            json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False) -> None:
    """What a profile would match among stored items, with reasons and near misses: edit, preview, repeat."""
    from bot.app import CORPUS_WINDOW, SEMANTIC_SWITCH, attached_embedder, scoring_corpus, utcnow
    from bot.scoring import compile_profiles
    from bot.store import Store

    cfg = load_config(config)
    if profile not in cfg.profiles:
        raise ConfigError(f"no profile named {profile!r} in {config}",
                          hint=f"Profiles defined: {', '.join(sorted(cfg.profiles)) or 'none'}.")
    until = _parse_now(now) or utcnow()
    store = Store.open(cfg.bot.database)
    try:
        corpus = scoring_corpus(store, until)  # the corpus planning scores with: the same scores as the digest
        items = store.items_first_seen_between(until - timedelta(days=days), until)
        embedder, _ = attached_embedder(cfg, store)  # the bot's stored vectors: nothing embedded twice
        matcher = compile_profiles(cfg.profiles, corpus=corpus, semantic=SEMANTIC_SWITCH[cfg.bot.semantic])
        ranked = matcher.rank(items, profile, with_below_min=True)
        if embedder is not None:
            embedder.detach(store)
    finally:
        store.close()
    threshold = matcher.min_score(profile)
    hits = [s for s in ranked if s.score >= threshold][:top]
    near = [s for s in ranked if s.score < threshold][:10]
    corpus_note = _corpus_note(matcher, f"the {len(corpus)} item(s) stored in the last {CORPUS_WINDOW.days} days, "
                                        "as digests are")
    if json_out:
        err.print(corpus_note, markup=False)
        _print_ranked(hits, json_out=True, with_profile=False, title="")
        return
    if not items:
        hint = ("nothing is stored yet: run `digestbot once` to fetch the sources first" if not corpus
                else f"nothing was first seen in the last {days} day(s): try --days {max(days * 4, 30)}")
        out.print(f"{profile}: no items to preview — {hint}.", markup=False)
        return
    _print_ranked(hits, json_out=False, with_profile=False,
                  title=f"{profile}: {len(hits)} match(es) among {len(items)} item(s) from the last {days} day(s); "
                        f"{corpus_note}")
    if near:
        _print_ranked(near, json_out=False, with_profile=False, title=f"near misses (below min_score {threshold:g})")


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
