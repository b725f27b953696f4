"""`digestbot run` as a real process: it ticks, takes a valid config edit, rejects a bad one by key and keeps
the last good config, and stops cleanly on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from bot.store import Store
from tests.conftest import PG_ENV, _pg_schema_url

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
    return len(rows) == 1 and "sources[0].every" in str(rows[0].payload.notice)


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
        assert health.status_code == 200 and health.json()["ok"] is True and health.json()["unknown_deliveries"] == 0
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


class Forwarder:
    """A TCP port that forwards to PostgreSQL only once `up()` is called: a database that is not up yet."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]  # nothing listens here until up()
        self._server: socketserver.ThreadingTCPServer | None = None

    def up(self) -> None:
        target = self.target

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with socket.create_connection(target) as upstream:
                    def pump(src: socket.socket, dst: socket.socket) -> None:
                        with contextlib.suppress(OSError):
                            while data := src.recv(65536):
                                dst.sendall(data)
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
                    back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
                    back.start()
                    pump(self.request, upstream)
                    back.join()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Pipe)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def test_run_started_while_the_database_is_down_waits_for_it(tmp_path: Path) -> None:
    """`digestbot run` started while PostgreSQL is down (restarting, not up yet) waits and says so; it used to
    exit with rc=1 and stay down."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    schemas = _pg_schema_url(base)
    url = make_url(next(schemas))
    forwarder = Forwarder((url.host or "127.0.0.1", url.port or 5432))
    config = tmp_path / "config.toml"
    log = tmp_path / "daemon.log"
    late = url.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False)
    config.write_text(CONFIG.format(db="", fixtures=FIXTURES).replace('"sqlite:///"', f'"{late}"'))
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config), "--tick", "0.3"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: log.read_text().count("digestbot starts once it answers") >= 2, "two tries to be logged")
        assert proc.poll() is None, log.read_text()  # still there, waiting
        assert "database unreachable" in log.read_text()
        forwarder.up()
        wait_for(lambda: "digestbot running" in log.read_text(), "the daemon to start once the database answers",
                 timeout=40)
        wait_for(lambda: "HTTP endpoint on" in log.read_text(), "the endpoint")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        forwarder.close()
        with contextlib.suppress(StopIteration):
            next(schemas)  # drops the schema
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()
