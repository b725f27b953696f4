"""Running the bot: `demo`, `run` (the daemon), `once` (one cycle) and `check-config`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from bot.config import (
    DEFAULT_CONFIG,
    Config,
    config_warnings,
    library_problems,
    load_config,
    missing_secrets,
    redact_url,
)
from bot.errors import ConfigError

if TYPE_CHECKING:
    pass
from bot.cli.base import ONCE_WAIT_SECONDS, ConfigOption, _parse_now, _run, app, err, out


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
    libraries = library_problems(cfg)
    if libraries:
        err.print(f"[bold red]{escape(str(config))}: {len(libraries)} problem(s)[/]")
        for problem in libraries:
            err.print(f"  - {problem}", markup=False)
        raise typer.Exit(1)
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
