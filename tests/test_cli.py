"""The command contract, as scripts and people call it: exit codes, JSON lines, messages with keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "data" / "fixtures"


def digestbot(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command in a subprocess, as a user would (`python -m bot` is the same entry point)."""
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, check=False)


def test_check_config_ok_on_the_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGESTBOT_SMTP_PASSWORD", "pw")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    result = digestbot("check-config", "--config", str(ROOT / "config.example.toml"))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert "2 source(s)" in result.stdout
    assert "warning" not in result.stdout + result.stderr  # what a newcomer copies must not warn


def test_check_config_names_every_secret_that_is_not_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """It said OK with SLACK_BOT_TOKEN unset; the daemon then failed the digest and disabled the channel."""
    monkeypatch.delenv("DIGESTBOT_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_LAB", raising=False)
    config = tmp_path / "config.toml"
    lab = '\n[[slack_channels]]\nchannel = "lab"\nwebhook_env = "SLACK_WEBHOOK_LAB"\nprofiles = ["rlhf"]\n'
    config.write_text((ROOT / "config.example.toml").read_text() + lab)
    result = digestbot("check-config", "--config", str(config))
    assert result.returncode == 1, result.stdout
    assert "smtp.password_env: DIGESTBOT_SMTP_PASSWORD is not set" in result.stderr
    assert "slack.token_env: SLACK_BOT_TOKEN is not set" in result.stderr
    assert "webhook_env: SLACK_WEBHOOK_LAB is not set" in result.stderr


def test_check_config_reports_typo_timezone_and_syntax(tmp_path: Path) -> None:
    text = (ROOT / "config.example.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("[smtp]", "[smpt]").replace('"Europe/Berlin"', '"Europe/Berln"'))
    result = digestbot("check-config", "--config", str(bad))
    assert result.returncode == 1
    assert "smpt: unknown key" in result.stderr
    assert "subscribers[0].timezone: unknown time zone 'Europe/Berln'" in result.stderr

    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace("[profiles.recsys]", "[profiles.recsys"))
    result = digestbot("check-config", "--config", str(broken))
    assert result.returncode == 1
    assert "TOML syntax error" in result.stderr and "line" in result.stderr


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    result = digestbot("once", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert "config file not found" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_parse_json_lines() -> None:
    result = digestbot("parse", "--kind", "hf_api", str(FIXTURES / "hf_api_daily_papers_2026-07-31.json"), "--json")
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(items) == 5
    assert items[0]["id"] == "arxiv:2607.23193"
    assert {"id", "title", "url", "abstract", "authors", "published", "metrics"} <= set(items[0])


def test_parse_weekend_feed_is_empty_and_fine() -> None:
    result = digestbot("parse", "--kind", "arxiv_feed", str(FIXTURES / "arxiv_rss_cs.CL_weekend_empty_2026-08-01.xml"),
                       "--json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_parse_wrong_kind_says_layout_changed() -> None:
    result = digestbot("parse", "--kind", "hf_api", str(FIXTURES / "arxiv_rss_cs.CL_weekend_empty_2026-08-01.xml"))
    assert result.returncode == 1
    assert "layout changed?" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def rank_inputs(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "profiles.toml"
    config.write_text('[profiles.rlhf]\nkeywords = ["DPO", "reward model"]\n\n'
                      '[profiles.recsys]\nkeywords = ["recommender"]\n')
    items = tmp_path / "items.jsonl"
    rows = [
        {"id": "a", "title": "DPO without a reward model", "abstract": "We study DPO."},
        {"id": "b", "title": "A recommender for papers", "abstract": "Collaborative filtering."},
        {"id": "c", "title": "Unrelated", "abstract": "Nothing here about either."},
        {"id": "d", "title": "Scaling laws", "abstract": "A reward model is trained."},
    ]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return config, items


def test_rank_one_profile_best_first_with_reasons(rank_inputs: tuple[Path, Path]) -> None:
    config, items = rank_inputs
    result = digestbot("rank", "--config", str(config), "--profile", "rlhf", "--items", str(items), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "d"]
    assert rows[0]["score"] > rows[1]["score"]
    assert {r["term"] for r in rows[0]["reasons"]} == {"DPO", "reward model"}
    assert "profile" not in rows[0]


def test_rank_every_profile_names_the_profile(rank_inputs: tuple[Path, Path]) -> None:
    config, items = rank_inputs
    result = digestbot("rank", "--config", str(config), "--items", str(items), "--json", "--top", "1")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(r["profile"], r["id"]) for r in rows} == {("rlhf", "a"), ("recsys", "b")}


def test_rank_unknown_profile(rank_inputs: tuple[Path, Path]) -> None:
    config, items = rank_inputs
    result = digestbot("rank", "--config", str(config), "--profile", "nope", "--items", str(items))
    assert result.returncode == 1
    assert "no profile named 'nope'" in result.stderr


def local_config(tmp_path: Path, feed_name: str, feed_path: Path, extra: str = "") -> Path:
    """A config on a SQLite file in `tmp_path` with two local sources: the real HF API page (`hf`, 30 papers) and
    an arXiv feed at `feed_path` named `feed_name`; `extra` TOML is appended."""
    config = tmp_path / "config.toml"
    config.write_text(f'''
[bot]
database = "sqlite:///{tmp_path / 'db.sqlite3'}"

[[sources]]
name = "hf"
kind = "hf_api"
url = "{FIXTURES / 'hf_api_daily_papers_2026-06-12.json'}"

[[sources]]
name = "{feed_name}"
kind = "arxiv_feed"
url = "{feed_path}"
{extra}''')
    return config


def test_once_then_preview_on_local_files(tmp_path: Path) -> None:
    config = local_config(tmp_path, "weekend", FIXTURES / "arxiv_rss_cs.CL_weekend_empty_2026-08-01.xml", """
[profiles.agents]
keywords = ["web agent", "multi-agent"]
min_score = 3
""")
    result = digestbot("once", "--config", str(config), "--now", "2026-11-23T07:00:00+01:00", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {s["source"]: (s["status"], s["new"]) for s in report["sources"]} == {
        "hf": ("ok", 30), "weekend": ("ok", 0)}

    result = digestbot("preview", "--config", str(config), "--profile", "agents", "--days", "1",
                       "--now", "2026-11-23T08:00:00+01:00")
    assert result.returncode == 0, result.stderr
    assert "WebChallenger" in result.stdout
    assert "web agent in title" in result.stdout
    assert "near misses" in result.stdout  # single abstract mentions fall under min_score 3


def test_demo_then_explore_its_database(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = digestbot("demo", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "digest-ada.html").exists() and (out / "digest-grace.html").exists()
    assert "Open" in result.stdout or "Digest for ada@example.org" in result.stdout
    html = (out / "digest-ada.html").read_text()
    assert "<table" in html and "agent in title" in html
    config = str(out / "config.toml")

    sent = [json.loads(line) for line in digestbot("outbox", "--all", "--json", "--config", config).stdout.splitlines()]
    assert sorted((r["recipient"], r["channel"], r["state"]) for r in sent) == [
        ("#papers", "slack", "sent"), ("ada", "email", "sent"), ("grace", "email", "sent")]
    assert digestbot("outbox", "--json", "--config", config).stdout == ""  # nothing pending or failed

    retried = digestbot("outbox", "retry", str(sent[0]["id"]), "--config", config)
    assert retried.returncode == 1 and "is sent" in retried.stderr

    health = [json.loads(line) for line in digestbot("sources", "--json", "--config", config).stdout.splitlines()]
    assert {h["name"]: h["status"] for h in health} == {
        "hf-daily": "ok", "hf-api": "ok", "hf-api-june": "ok", "arxiv-rss": "ok", "arxiv-atom": "ok"}


def test_status_after_the_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert digestbot("demo", "--out", str(out)).returncode == 0
    result = digestbot("status", "--json", "--config", str(out / "config.toml"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["last_cycle"] and report["items_stored"] == 53
    assert report["deliveries"] == {"sent": 3}
    assert report["failing_sources"] == [] and report["problems"] == []
    assert {u["recipient"] for u in report["next_due"]} == {"ada", "grace", "#papers"}


def test_sources_table_says_which_source_fails_why_and_what_to_do(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich would wrap the error column at 80
    config = local_config(tmp_path, "moved", tmp_path / "gone.xml")
    assert digestbot("once", "--config", str(config)).returncode == 0
    result = digestbot("sources", "--config", str(config))
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 2}
    assert "ok" in rows["hf"] and "30" in rows["hf"] and "cannot read" not in rows["hf"]
    assert "failing" in rows["moved"] and "1" in rows["moved"]
    assert "gone.xml: cannot read the file" in rows["moved"]
    assert "Check the path" in rows["moved"]  # the hint is kept with the error


def test_parse_error_is_one_line_whatever_the_path(tmp_path: Path) -> None:
    """Scripts grep stderr for "layout changed?": the message must not be wrapped at the console width."""
    folder = tmp_path / ("a-folder-with-a-long-name-" * 4)
    folder.mkdir()
    page = folder / "garbage.html"
    page.write_text("<html><body><p>We moved!</p></body></html>")
    result = digestbot("parse", "--kind", "arxiv_feed", str(page), "--json")
    assert result.returncode == 1 and result.stdout == ""
    [line] = [line for line in result.stderr.splitlines() if "layout changed?" in line]
    assert line.startswith(f"error: {page}: ")
    assert any(line.startswith("hint: ") and line.endswith("may have changed.") for line in result.stderr.splitlines())


MINIMAL = """
[bot]
database = "{database}"

[profiles.p]
keywords = ["DPO"]
"""


def test_a_full_disk_and_a_bad_database_port_are_messages_not_tracebacks(tmp_path: Path) -> None:
    """`once` whose lock file cannot be written (the disk is full: a lock file that is /dev/full) and a database
    URL with a port that is no number: both say what is wrong, exit 1, and `check-config` catches the URL."""
    db = tmp_path / "db.sqlite3"
    (tmp_path / "db.sqlite3.lock").symlink_to("/dev/full")
    config = tmp_path / "config.toml"
    config.write_text(MINIMAL.format(database=f"sqlite:///{db}"))
    result = digestbot("once", "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot write the lock file" in result.stderr and "Is the disk full?" in result.stderr
    assert "Traceback" not in result.stderr

    config.write_text(MINIMAL.format(database="postgresql+psycopg://ada:s3cret@db.example.org:fivefour/papers"))
    for command in ("check-config", "once", "outbox", "status"):
        result = digestbot(command, "--config", str(config))
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "bot.database: expected a URL like" in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr and "s3cret" not in result.stderr


def test_resubscribe_undoes_an_unsubscribe_only_when_asked(tmp_path: Path) -> None:
    from bot.store import Store

    config = tmp_path / "config.toml"
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    config.write_text(MINIMAL.format(database=url))
    from datetime import UTC, datetime

    with Store.open(url) as store:
        store.unsubscribe("ada@example.org", at=datetime(2026, 12, 1, tzinfo=UTC))
    result = digestbot("resubscribe", "bo@example.org", "--config", str(config))
    assert result.returncode == 1 and "bo@example.org is not unsubscribed" in result.stderr
    result = digestbot("resubscribe", "Ada@Example.org", "--config", str(config))
    assert result.returncode == 0, result.stderr
    with Store.open(url) as store:
        assert not store.is_unsubscribed("ada@example.org")


def test_global_flags_work_after_the_subcommand_and_help_shows_no_bool_for_flags(tmp_path: Path) -> None:
    """`digestbot check-config -v` said "No such option"; help labelled every flag "<bool>"."""
    config = tmp_path / "config.toml"
    config.write_text(MINIMAL.format(database=f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    for args in (("check-config", "--config", str(config), "-v"), ("check-config", "--debug", "--config", str(config))):
        result = digestbot(*args)
        assert result.returncode == 0, (args, result.stderr)
    shown = digestbot("--help").stdout + digestbot("once", "--help").stdout
    assert "<bool>" not in shown and "--verbose" in shown and "--now" in shown
    assert "Usage: digestbot parse [OPTIONS] FILE_OR_URL\n" in digestbot("parse", "--help").stdout  # no {braces}


def test_status_and_preview_on_a_fresh_database_say_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.example.toml").read_text().replace(
        'database = "sqlite:///data/digestbot.sqlite3"', f'database = "sqlite:///{tmp_path / "db.sqlite3"}"'))
    status = digestbot("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    assert "Last cycle: none yet" in status.stdout and "never UTC" not in status.stdout
    assert "All sources are working" not in status.stdout and "`digestbot once`" in status.stdout
    preview = digestbot("preview", "--profile", "rlhf", "--config", str(config))
    assert preview.returncode == 0, preview.stderr
    assert "nothing is stored yet: run `digestbot once`" in preview.stdout
    sources = digestbot("sources", "--config", str(config))
    assert sources.returncode == 0 and "hf_papers" in sources.stdout and "…" not in sources.stdout, sources.stdout


def test_the_demo_hints_give_a_command_that_works_as_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the README's install `digestbot` is not on PATH: the hints say `.venv/bin/digestbot` then."""
    import shutil

    from bot.demo import invoked_as

    script = tmp_path / ".venv" / "bin" / "digestbot"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert invoked_as(str(script)) == ".venv/bin/digestbot"
    monkeypatch.setattr(shutil, "which", lambda name: str(script))  # the venv is active
    assert invoked_as(str(script)) == "digestbot"
    assert invoked_as("/somewhere/bot/__main__.py").endswith(" -m bot")


def test_parse_of_an_unreachable_url_does_not_promise_a_next_refresh() -> None:
    result = digestbot("parse", "--kind", "feed", "http://127.0.0.1:9/feed.xml")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr and "try the command again" in result.stderr
    assert "next refresh" not in result.stderr


def test_every_command_an_admin_notice_names_exists() -> None:
    """The notices tell a person what to type; one said `digestbot outbox --state unknown`, which the command
    refuses (there is no such option). Each `digestbot …` in a notice must parse (placeholders like ID aside)."""
    import re
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from bot.cli import app
    from bot.outbox.notices import DELIVERY_PROBLEMS, delivery_problem_notice

    commands = set()
    for kind in DELIVERY_PROBLEMS:
        notice = delivery_problem_notice(kind, "email", "ada@example.org", "boom", datetime(2026, 12, 4, tzinfo=UTC))
        commands |= set(re.findall(r"`digestbot ([^`]+)`", " ".join(notice.lines)))
    assert {"outbox", "outbox retry ID", "check-config"} <= commands
    for command in sorted(commands):
        args = [word for word in command.split() if not word.isupper()]  # ID, ADDRESS: what the person fills in
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, f"`digestbot {command}` in a notice: {result.output}"
