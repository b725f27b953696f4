"""`digestbot run` as a real process: it ticks, takes a valid config edit, rejects a bad one by key and keeps
the last good config, and stops cleanly on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.store import Store

FIXTURES = Path(__file__).parent / "data" / "fixtures"

CONFIG = """
[bot]
database = "sqlite:///{db}"
http_port = 0
admin_email = "ops@example.org"

[smtp]
host = "127.0.0.1"
port = 9
security = "none"
sender = "digest@example.org"

[[sources]]
name = "hf"
kind = "hf_api"
url = "{fixtures}/hf_api_daily_papers_2026-06-12.json"
every = "1h"

[profiles.agents]
keywords = ["agent"]
"""

NEW_SOURCE = """
[[sources]]
name = "hf-july"
kind = "hf_api"
url = "{fixtures}/hf_api_daily_papers_2026-07-31.json"
every = "1h"
"""


def wait_for(predicate: object, what: str, timeout: float = 20.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def fetched(db: Path, source: str) -> bool:
    with Store.open(f"sqlite:///{db}") as store:
        return store.get_source_state(source).last_success_at is not None


def admin_told(db: Path) -> bool:
    with Store.open(f"sqlite:///{db}") as store:
        rows = [d for d in store.deliveries() if d.key.startswith("notice:email:config-rejected:")]
    return len(rows) == 1 and "sources[0].every" in str(rows[0].payload)


def test_run_reloads_config_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    config = tmp_path / "config.toml"
    log = tmp_path / "daemon.log"
    good = CONFIG.format(db=db, fixtures=FIXTURES)
    config.write_text(good)
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config), "--tick", "0.3"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: fetched(db, "hf"), "the first source to be fetched")
        endpoint = re.search(r"HTTP endpoint on (http://127\.0\.0\.1:\d+)", log.read_text())
        assert endpoint, log.read_text()
        health = httpx.get(endpoint[1] + "/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["ok"] is True
        wait_for(lambda: 'digestbot_fetches_total{source="hf",status="ok"} 1.0'
                 in httpx.get(endpoint[1] + "/metrics", timeout=5).text, "the fetch to be counted in /metrics")

        time.sleep(0.05)
        config.write_text(good.replace('every = "1h"', 'every = "soon"'))  # a bad edit
        wait_for(lambda: "config edit rejected" in log.read_text(), "the bad edit to be reported")
        assert "sources[0].every: expected a duration" in log.read_text()
        assert proc.poll() is None  # still running on the last good config
        wait_for(lambda: admin_told(db), "the admin notice about the rejected edit to be planned")

        time.sleep(0.05)
        config.write_text(good + NEW_SOURCE.format(fixtures=FIXTURES))  # a valid edit: a new source
        wait_for(lambda: fetched(db, "hf-july"), "the new source to be fetched")
        assert "config reloaded" in log.read_text()

        time.sleep(0.05)
        config.write_text("")  # emptied (`: > config.toml`, an editor's half-write): not "no readers"
        wait_for(lambda: "is empty: no [profiles]" in log.read_text(), "the emptied file to be rejected")
        assert proc.poll() is None

        time.sleep(0.05)  # a valid edit that moves the database and the endpoint: said, not silently ignored
        moved = good.replace(f"sqlite:///{db}", f"sqlite:///{db}.moved")
        config.write_text(moved.replace("http_port = 0", 'http_port = 0\nhttp_host = "0.0.0.0"'))
        wait_for(lambda: "bot.database changed in the config: it takes effect after a restart" in log.read_text(),
                 "the database change to be reported")
        assert "bot.http_host changed in the config: it takes effect after a restart" in log.read_text()
        assert httpx.get(endpoint[1] + "/healthz", timeout=5).status_code == 200  # the same endpoint, still
        assert not Path(f"{db}.moved").exists()  # and the same database
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()
    assert "digestbot stopped after" in log.read_text()
    assert "Traceback" not in log.read_text()
