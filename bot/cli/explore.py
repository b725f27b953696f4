"""Trying pages and profiles: `parse` (one page to items), `rank` and `preview` (what a profile would match)."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bot.config import DEFAULT_CONFIG, load_config
from bot.errors import BotError, ConfigError
from bot.models import ScoredItem

if TYPE_CHECKING:
    from bot.scoring import Matcher
from bot.cli.base import ConfigOption, PlainUsage, _parse_now, _run, app, err, out


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
         json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
         ratings: Annotated[Path | None, typer.Option(
             "--ratings", help="JSON lines {\"id\": ..., \"rating\": 1 | -1}: rank as a reader who rated these "
                               "would see it.")] = None) -> None:
    """Score items from a JSON-lines file and print them best first, with scores and reasons."""
    from bot.app import SEMANTIC_SWITCH
    from bot.scoring import compile_profiles, load_items_jsonl
    from bot.scoring.feedback import load_ratings, taste_of, with_feedback

    cfg = load_config(config)
    if profile is not None and profile not in cfg.profiles:
        raise ConfigError(f"no profile named {profile!r} in {config}",
                          hint=f"Profiles defined: {', '.join(sorted(cfg.profiles)) or 'none'}.")
    corpus = load_items_jsonl(items)
    matcher = compile_profiles(cfg.profiles, corpus=corpus, semantic=SEMANTIC_SWITCH[cfg.bot.semantic])
    ranked = matcher.rank_all(corpus, top=top, profiles=None if profile is None else [profile])
    if ratings is not None:  # the same papers, moved by the reader's taste (`bot.scoring.feedback`)
        taste = taste_of(load_ratings(ratings), {item.id: item for item in corpus}, corpus, matcher.embed)
        if taste is not None:
            ranked = {name: with_feedback(matcher.rank(corpus, name, with_below_min=True), taste,
                                          min_score=matcher.min_score(name), limit=top) for name in ranked}
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
