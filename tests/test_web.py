"""The unsubscribe endpoint on a real server (127.0.0.1, port 0) and a real store, driven over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.errors import ConfigError
from bot.outbox.keys import unsubscribe_url
from bot.store import Store
from bot.tokens import make_token
from bot.web import WebServer, make_app

SECRET = b"k" * 32
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
HTML_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a server for an app and hand back an httpx client on it; everything closed after the test."""
    servers: list[WebServer] = []
    clients: list[httpx.AsyncClient] = []

    async def start(store: Store, **options: Any) -> httpx.AsyncClient:
        server = WebServer(make_app(store, SECRET, **options), port=0)
        await server.start()
        servers.append(server)
        client = httpx.AsyncClient(base_url=server.url, timeout=10, follow_redirects=False)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        await server.stop()


def token_for(address: str, issued: datetime = T0, secret: bytes = SECRET) -> str:
    return make_token(address, secret, issued=issued)


def assert_html_safe(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html")
    for name, value in HTML_HEADERS.items():
        assert response.headers[name] == value
    csp = response.headers["content-security-policy"]
    for directive in ("default-src 'none'", "style-src 'unsafe-inline'", "form-action 'self'"):
        assert directive in csp
    assert "set-cookie" not in response.headers


async def test_get_shows_a_confirmation_and_changes_nothing(store: Store, serve: Serve) -> None:
    client = await serve(store, clock=Clock(T0))
    for method in ("GET", "HEAD", "GET"):
        response = await client.request(method, f"/unsubscribe/{token_for('ana@example.org')}")
        assert response.status_code == 200
        assert_html_safe(response)
    assert "ana@example.org" in response.text
    assert '<form method="post">' in response.text and "One-Click" in response.text
    assert not store.is_unsubscribed("ana@example.org")
    assert store.unsubscribed() == set()


async def test_one_click_post_unsubscribes_and_is_idempotent(store: Store, serve: Serve) -> None:
    client = await serve(store, clock=Clock(T0 + timedelta(days=3)))
    url = f"/unsubscribe/{token_for('Ana@Example.org')}"
    for _ in range(2):
        response = await client.post(url, data=ONE_CLICK)
        assert response.status_code == 200
        assert_html_safe(response)
        assert "You are unsubscribed" in response.text and "Ana@Example.org" in response.text
    assert store.is_unsubscribed("ana@example.org")
    assert store.unsubscribed() == {"ana@example.org"}


async def test_the_reader_can_undo_an_unsubscribe_from_the_page_and_only_with_the_token(store: Store,
                                                                                        serve: Serve) -> None:
    client = await serve(store, clock=Clock(T0 + timedelta(days=1)))
    token = token_for("ana@example.org")
    done = await client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    action = re.search(r'<form method="post" action="([^"]+)"', done.text)
    assert action is not None and "Subscribe again" in done.text
    assert store.is_unsubscribed("ana@example.org")
    forged = await client.post(f"/resubscribe/{token[:-2]}xx")
    assert forged.status_code == 400 and store.is_unsubscribed("ana@example.org")
    again = await client.post(httpx.URL(f"/unsubscribe/{token}").join(action.group(1)))
    assert again.status_code == 200
    assert_html_safe(again)
    assert "You are subscribed again" in again.text
    assert not store.is_unsubscribed("ana@example.org")
    assert (await client.get(f"/resubscribe/{token}")).status_code == 405  # a GET changes nothing


async def test_post_without_the_one_click_body_also_unsubscribes(store: Store, serve: Serve) -> None:
    """A browser submitting the page's form, or a client sending an empty body: the token is the authority."""
    client = await serve(store, clock=Clock(T0))
    response = await client.post(f"/unsubscribe/{token_for('bo@example.org')}")
    assert response.status_code == 200
    assert store.is_unsubscribed("bo@example.org")


@pytest.mark.parametrize(("make", "status"), [
    (lambda: token_for("ana@example.org", secret=b"x" * 32), 400),  # forged: someone else's secret
    (lambda: token_for("ana@example.org")[:-2] + "AA", 400),  # tampered MAC
    (lambda: "not-a-token", 400),
    (lambda: token_for("ana@example.org", issued=T0 - timedelta(days=120)), 410),  # expired
    (lambda: token_for("ana@example.org", issued=T0 + timedelta(days=3)), 400),  # from the future
])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_bad_tokens_get_a_short_page_and_store_nothing(store: Store, serve: Serve, method: str,
                                                             make: Callable[[], str], status: int) -> None:
    client = await serve(store, clock=Clock(T0))
    response = await client.request(method, f"/unsubscribe/{make()}", data=ONE_CLICK if method == "POST" else None)
    assert response.status_code == status
    assert_html_safe(response)
    assert "Traceback" not in response.text and "ana@example.org" not in response.text
    assert len(response.text) < 2000
    assert store.unsubscribed() == set()


async def test_hostile_address_is_escaped_on_both_pages(store: Store, serve: Serve) -> None:
    client = await serve(store, clock=Clock(T0))
    hostile = '"><script>alert(1)</script>@evil.org'
    url = f"/unsubscribe/{token_for(hostile)}"
    for response in (await client.get(url), await client.post(url, data=ONE_CLICK)):
        assert response.status_code == 200
        assert "<script>" not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert store.is_unsubscribed(hostile)


async def test_unknown_routes_and_methods_are_refused(store: Store, serve: Serve) -> None:
    client = await serve(store, clock=Clock(T0))
    assert (await client.get("/unsubscribe/")).status_code == 404
    assert (await client.get("/")).status_code == 404
    assert (await client.put(f"/unsubscribe/{token_for('a@x.org')}")).status_code == 405
    assert store.unsubscribed() == set()


async def test_oversized_body_is_refused(store: Store, serve: Serve) -> None:
    client = await serve(store, clock=Clock(T0))
    response = await client.post(f"/unsubscribe/{token_for('a@x.org')}", data={"x": "y" * 100_000})
    # The token is valid and the body is never read, so the unsubscribe itself goes through.
    assert response.status_code in (200, 413)


async def test_database_down_gives_503_to_retry_not_a_traceback(store: Store, serve: Serve,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    client = await serve(store, clock=Clock(T0))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(Store, "unsubscribe", broken)  # the handler calls it as `Store.unsubscribe` in a thread
    response = await client.post(f"/unsubscribe/{token_for('a@x.org')}", data=ONE_CLICK)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "300"
    assert "locked" not in response.text and "Traceback" not in response.text


async def test_healthz_reports_ok_with_details(store: Store, serve: Serve) -> None:
    client = await serve(store, health=lambda: {"last_cycle": T0, "sources_failing": 0})
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "last_cycle": str(T0), "sources_failing": 0}
    assert (await (await serve(store)).get("/healthz")).json() == {"ok": True}


async def test_healthz_is_503_when_the_check_fails(store: Store, serve: Serve) -> None:
    def failing() -> dict[str, Any]:
        raise RuntimeError("postgresql://user:hunter2@db/x unreachable")

    response = await (await serve(store, health=failing)).get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"ok": False, "error": "RuntimeError"}
    assert "hunter2" not in response.text

    response = await (await serve(store, health=lambda: {"ok": False, "why": "no cycle for 2h"})).get("/healthz")
    assert response.status_code == 503


async def test_server_reports_its_port_and_stops_cleanly(store: Store) -> None:
    async with WebServer(make_app(store, SECRET), port=0) as server:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/healthz")).status_code == 200
    async with httpx.AsyncClient(base_url=server.url) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/healthz")


async def test_port_in_use_is_a_config_error_naming_the_key(store: Store) -> None:
    async with WebServer(make_app(store, SECRET), port=0) as first:
        with pytest.raises(ConfigError) as caught:
            await WebServer(make_app(store, SECRET), port=first.port).start()
        assert "bot.http_port" in (caught.value.hint or "")


async def test_link_built_for_emails_works_end_to_end(store: Store, serve: Serve) -> None:
    client = await serve(store, clock=Clock(T0))
    url = unsubscribe_url(f"{client.base_url}".rstrip("/") + "/", token_for("cy@example.org"))
    assert "//unsubscribe" not in url
    assert (await client.post(url, data=ONE_CLICK)).status_code == 200
    assert store.is_unsubscribed("cy@example.org")


def test_unsubscribe_url_keeps_a_path_prefix() -> None:
    assert unsubscribe_url("https://x.org/digest/", "abc.def") == "https://x.org/digest/unsubscribe/abc.def"


def test_empty_secret_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        make_app(store, b"")
