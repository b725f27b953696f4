"""`digestbot demo`: the real pipeline, offline, in a few seconds.

Bundled copies of real pages (Hugging Face Daily Papers, its API, arXiv RSS and Atom feeds) are served from a
local HTTP server; one cycle runs for a sample config (two subscribers, two profiles, one Slack channel);
mail goes by SMTP to an embedded aiosmtpd sink that writes a Maildir, Slack posts go to a local server that
speaks the Web API. Nothing here is a mock: only the far ends are local.
"""

from __future__ import annotations

import email
import logging
import mailbox
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from bot.app import App, CycleReport, utcnow
from bot.config import load_config
from bot.notify.maildir import MaildirSink
from bot.notify.slack_sink import SlackSink
from bot.sources.fetch import Fetcher

log = logging.getLogger(__name__)

DEMO_TOKEN_ENV = "DIGESTBOT_DEMO_SLACK_TOKEN"

# Which bundled page each demo source serves, by kind.
DEMO_SOURCES = (
    ("hf-daily", "hf_papers", "hf_papers_daily_2024-08-01.html"),
    ("hf-api", "hf_api", "hf_api_daily_papers_2026-07-31.json"),
    ("hf-api-june", "hf_api", "hf_api_daily_papers_2026-06-12.json"),
    ("arxiv-rss", "arxiv_feed", "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_trimmed.xml"),
    ("arxiv-atom", "arxiv_feed", "arxiv_rss-atom_cs.LG_2026-09-25_trimmed.xml"),
)


DEMO_CONFIG = """\
# The config `digestbot demo` ran with, written as a person would. The servers it points at are gone now,
# but the database stays: try `digestbot preview`, `digestbot sources` or `digestbot outbox` with it.

[bot]
database = "sqlite:///{database}"
user_agent = "digestbot-demo/0.1"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "digestbot demo <digest@demo.digestbot.example>"

[slack]
token_env = "{token_env}"
base_url = "{slack_url}"
{sources}
[profiles.agents]
keywords = ["LLM agents", "agent", "multi-agent", "tool use", "web agent", "search agent", "benchmark"]
exclude = ["drone"]
description = "Language-model agents: tool use, web and search agents, multi-agent systems."
min_score = 1.0

[profiles.multimodal]
keywords = ["multimodal", "vision-language", "MLLM", "image generation", "diffusion", "visual reasoning", "video"]
description = "Vision-language and multimodal models, image and video generation."
min_score = 1.0

[[subscribers]]
name = "ada"
email = "ada@example.org"
profiles = ["agents"]
schedule = "daily {berlin}"
timezone = "Europe/Berlin"
max_items = 10

[[subscribers]]
name = "grace"
email = "grace@example.org"
profiles = ["multimodal", "agents"]
schedule = "daily {new_york}"
timezone = "America/New_York"
max_items = 15

[[slack_channels]]
channel = "C0DEMO"
name = "#papers"
profiles = ["multimodal"]
schedule = "daily {utc}"
timezone = "UTC"
max_items = 8
"""

_SOURCE = """
[[sources]]
name = "{name}"
kind = "{kind}"
url = "{url}"
every = "1h"
"""


def demo_config(out_dir: Path, pages_url: str, smtp_port: int, slack_url: str, *, at: datetime) -> Path:
    """Write the sample config, pointed at the local servers and due at `at`, to `out_dir/config.toml`."""

    def local(tz: str) -> str:
        return f"{at.astimezone(ZoneInfo(tz)):%H:%M}"

    sources = "".join(_SOURCE.format(name=name, kind=kind, url=f"{pages_url}/{page}")
                      for name, kind, page in DEMO_SOURCES)
    text = DEMO_CONFIG.format(database=(out_dir / "demo.sqlite3").resolve().as_posix(), smtp_port=smtp_port,
                              token_env=DEMO_TOKEN_ENV, slack_url=slack_url, sources=sources,
                              berlin=local("Europe/Berlin"), new_york=local("America/New_York"), utc=local("UTC"))
    path = out_dir / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        return


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """A static file server on 127.0.0.1 (port 0) in a thread; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    return part.get_content() if part is not None else ""


def write_digests(maildir: Path, out_dir: Path) -> list[tuple[str, str, Path]]:
    """Each received mail's HTML part as a file to open: (to, subject, path)."""
    written = []
    for key, msg in sorted(mailbox.Maildir(maildir, create=False).items()):
        parsed = email.message_from_bytes(msg.as_bytes(), policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        to = str(parsed["To"])
        path = out_dir / f"digest-{to.split('@')[0]}.html"
        path.write_text(_html_part(parsed), encoding="utf-8")
        written.append((to, str(parsed["Subject"]), path))
        log.debug("wrote %s from %s", path, key)
    return written


def invoked_as(argv0: str | None = None) -> str:
    """How to type digestbot again in this shell: `digestbot` if that is what runs on PATH, else the path that
    was typed (`.venv/bin/digestbot` before the venv is activated), else `python -m bot`."""
    typed = Path(argv0 if argv0 is not None else sys.argv[0])
    if typed.name == "digestbot":
        on_path = shutil.which("digestbot")
        if on_path is not None and Path(on_path).resolve() == typed.resolve():
            return "digestbot"
        relative = os.path.relpath(typed)
        return relative if not relative.startswith("..") else str(typed)
    python = os.path.relpath(sys.executable)
    return f"{python if not python.startswith('..') else sys.executable} -m bot"


async def run_demo(out_dir: Path, console: Console) -> CycleReport:
    """Serve, run one cycle, show what was fetched, matched and sent, and where the digest is."""
    out_dir = out_dir.resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    os.environ.setdefault(DEMO_TOKEN_ENV, "xoxb-demo-token")
    with as_file(files("bot") / "demo_data") as pages, serve_directory(Path(pages)) as pages_url:
        async with AsyncExitStack() as stack:
            sink = await stack.enter_async_context(MaildirSink(out_dir / "Maildir"))
            slack = await stack.enter_async_context(SlackSink(record_to=out_dir / "slack.jsonl"))
            now = utcnow().replace(second=0, microsecond=0)
            config = load_config(demo_config(out_dir, pages_url, sink.port, slack.base_url, at=now))
            # All pages come from one local host: the politeness spacing meant for real sites is not needed.
            async with Fetcher(config.bot.user_agent, min_host_interval=0.0) as fetcher, \
                    App(config, fetcher=fetcher) as app:
                # The bot meets its subscribers a minute before their digest hour, fetching; then the hour comes.
                first = await app.cycle(now=now - timedelta(minutes=1))
                report = await app.cycle(now=now)
                report.refreshed = first.refreshed
    _show(console, report, out_dir)
    return report


def _show(console: Console, report: CycleReport, out_dir: Path) -> None:
    from bot.report import print_cycle

    print_cycle(console, report)
    digests = write_digests(out_dir / "Maildir", out_dir)
    table = Table("to", "subject", title="Mail received by the local SMTP sink")
    for to, subject, _path in digests:
        table.add_row(to, subject)
    console.print(table)
    slack = out_dir / "slack.jsonl"
    posts = slack.read_text(encoding="utf-8").splitlines() if slack.exists() else []
    console.print(f"Slack: {len(posts)} message(s) posted to the local Slack API, recorded in {slack}")
    for to, _subject, path in digests:
        console.print(f"Digest for {to}: [bold]{path}[/]")
    console.print(f"Maildir with the raw messages: {out_dir / 'Maildir'}")
    config = out_dir / "config.toml"
    me = invoked_as()
    console.print(f"\nExplore what it stored: [bold]{me} preview --config {config} --profile agents[/], "
                  f"[bold]{me} sources --config {config}[/], [bold]{me} outbox --all --config {config}[/]")
