"""A real HTTP server on 127.0.0.1 (port 0) in a thread, for any test that must talk HTTP.

    from tests.support.localhttp import LocalHTTPServer, Reply

    with LocalHTTPServer(directory=FIXTURES) as server:      # files served with ETag / Last-Modified / 304
        server.route("/flaky", Reply(500), Reply(200, b"ok"))  # canned replies in order; the last one repeats
        server.route("/dyn", handler=lambda request: Reply(200, request.path.encode()))
        url = server.url("/flaky")
        ...
        server.requests_for("/flaky")                         # what the client really sent, with times
        server.max_in_flight                                  # the most requests it was answering at once

Routes match the path with its query first, then without. Each connection is closed after its response
(HTTP/1.0), and a client that hangs up early (size caps, deadlines) is not an error on the server side.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["LocalHTTPServer", "Reply", "Request"]


@dataclass(frozen=True)
class Reply:
    """One canned response. `delay` holds the answer back and `drip` trickles the body (deadline tests)."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0  # seconds between body bytes: a server that trickles (read timeouts never fire)
    hang_up: bool = False  # close the connection without answering (after `delay`)


@dataclass(frozen=True)
class Request:
    """One request as received: `headers` keys are lowercase; `at` is `time.monotonic()` on arrival."""

    method: str
    path: str
    headers: dict[str, str]
    at: float


Handler = Callable[[Request], Reply]


class LocalHTTPServer:
    """Serves routes (canned replies or a handler) and, optionally, the files of one directory."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory).resolve() if directory is not None else None
        self.requests: list[Request] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up -----------------------------------------------------------------------------------------
    def route(self, path: str, *replies: Reply, handler: Handler | None = None) -> None:
        """Answer `path` with `replies` in order (the last one repeats), or with `handler(request)`."""
        if handler is None:
            if not replies:
                raise ValueError("route() needs replies or a handler")
            queue = list(replies)

            def handler(request: Request) -> Reply:
                with self._lock:
                    return queue.pop(0) if len(queue) > 1 else queue[0]

        self._routes[path] = handler

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path or urlsplit(r.path).path == path]

    # -- life cycle -------------------------------------------------------------------------------------
    def start(self) -> LocalHTTPServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="LocalHTTPServer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering --------------------------------------------------------------------------------------
    def _answer(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        handler = self._routes.get(request.path) or self._routes.get(urlsplit(request.path).path)
        if handler is not None:
            return handler(request)
        return self._file_reply(request)

    def _file_reply(self, request: Request) -> Reply:
        if self.directory is None:
            return Reply(404, b"no such route")
        target = (self.directory / unquote(urlsplit(request.path).path).lstrip("/")).resolve()
        if not target.is_file() or not target.is_relative_to(self.directory):
            return Reply(404, b"not found")
        body = target.read_bytes()
        mtime = target.stat().st_mtime
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        headers = {"ETag": etag, "Last-Modified": formatdate(mtime, usegmt=True),
                   "Content-Type": mimetypes.guess_type(target.name)[0] or "application/octet-stream"}
        if _not_modified(request.headers, etag, mtime):
            return Reply(304, b"", headers)
        return Reply(200, body, headers)

    def _write_body(self, out: Any, reply: Reply) -> None:
        if not reply.drip:
            out.write(reply.body)
            return
        for i in range(len(reply.body)):
            if self._stopping.is_set():
                return
            out.write(reply.body[i:i + 1])
            out.flush()
            time.sleep(reply.drip)

    def _wait(self, seconds: float) -> None:
        """Hold a reply back, but let a stopping server go at once."""
        end = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < end:
            time.sleep(0.02)


def _not_modified(headers: Mapping[str, str], etag: str, mtime: float) -> bool:
    if "if-none-match" in headers:
        return etag in [tag.strip() for tag in headers["if-none-match"].split(",")]
    since = headers.get("if-modified-since")
    if since:
        try:
            return int(mtime) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
    return False


def _make_handler(server: LocalHTTPServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve(send_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(send_body=False)

        def _serve(self, *, send_body: bool) -> None:
            request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                              time.monotonic())
            with server._lock:
                server._in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server._in_flight)
            try:
                self._reply(server._answer(request), send_body=send_body)
            finally:
                with server._lock:
                    server._in_flight -= 1

        def _reply(self, reply: Reply, *, send_body: bool) -> None:
            if reply.delay:
                server._wait(reply.delay)
            if reply.hang_up:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if not any(name.lower() == "content-length" for name in reply.headers):
                    self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if send_body and reply.status not in (204, 304):
                    server._write_body(self.wfile, reply)
            except (ConnectionError, OSError):
                pass  # the client hung up early on purpose (size cap, deadline)

        def handle(self) -> None:
            with contextlib.suppress(ConnectionError, OSError):  # a client that hung up early
                super().handle()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of the base class)
            return

    return _Handler
