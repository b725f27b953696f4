"""👍 / 👎: the ratings store, the signed rating links and the endpoint's pages and Slack buttons, on a real server
(127.0.0.1, port 0) and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.models import Item
from bot.store import Store
from bot.tokens import InvalidToken, RatingSubject, make_token, rating_token, read_rating_token
from bot.web import WebServer, make_app

SECRET = b"r" * 32
SLACK_SECRET = b"slack-signing-secret-for-tests"
T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
ADA = RatingSubject("email", "ada", "rlhf", "arxiv:2612.00001")
PAPER = Item(id="arxiv:2612.00001", title="Reward models <b>that</b> generalise", url="https://arxiv.org/abs/2612.00001",
             abstract="We study reward models.", authors=("A. Lovelace",))

Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[WebServer] = []
    clients: list[httpx.AsyncClient] = []

    async def start(store: Store, **options: Any) -> httpx.AsyncClient:
        options.setdefault("clock", lambda: T0 + timedelta(hours=1))
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


def stored(store: Store) -> list[tuple[str, str, str, str, int]]:
    return [(r.channel, r.recipient, r.item_id, r.profile, r.rating) for r in store.ratings_of("email", "ada")]


# -- the store ---------------------------------------------------------------------------------------------


def test_a_changed_rating_replaces_the_old_and_the_same_one_again_changes_nothing(store: Store) -> None:
    assert store.rate("email", "ada", "arxiv:1", "rlhf", 1, at=T0) is None
    assert store.rate("email", "ada", "arxiv:1", "rlhf", 1, at=T0 + timedelta(hours=1)) == 1
    assert [r.rated_at for r in store.ratings_of("email", "ada")] == [T0]  # not even its time
    assert store.rate("email", "ada", "arxiv:1", "rlhf", -1, at=T0 + timedelta(hours=2)) == 1
    assert stored(store) == [("email", "ada", "arxiv:1", "rlhf", -1)]
    store.rate("email", "ada", "arxiv:1", "recsys", 1, at=T0)  # the same paper shown for another profile
    assert len(store.ratings_of("email", "ada")) == 2
    assert store.rate("email", "ada", "arxiv:1", "rlhf", None, at=T0) == -1  # withdrawn
    assert stored(store) == [("email", "ada", "arxiv:1", "recsys", 1)]
    with pytest.raises(ValueError, match="a rating is"):
        store.rate("email", "ada", "arxiv:1", "rlhf", 2, at=T0)


def test_ratings_are_read_per_recipient_counted_and_forgotten(store: Store) -> None:
    for i in range(3):
        store.rate("email", "ada", f"arxiv:{i}", "rlhf", 1 if i else -1, at=T0 + timedelta(minutes=i))
    store.rate("slack", "#papers", "arxiv:9", "rlhf", 1, at=T0)
    store.rate("email", "gone", "arxiv:9", "rlhf", 1, at=T0)
    found = store.ratings_for([("email", "ada"), ("slack", "#papers"), ("email", "nobody")])
    assert sorted(found) == [("email", "ada"), ("slack", "#papers")]
    assert [r.item_id for r in found[("email", "ada")]] == ["arxiv:0", "arxiv:1", "arxiv:2"]  # oldest first
    counts = {(c.channel, c.recipient): (c.likes, c.dislikes) for c in store.rating_counts()}
    assert counts == {("email", "ada"): (2, 1), ("email", "gone"): (1, 0), ("slack", "#papers"): (1, 0)}
    state = store.rating_state("email", "ada", "arxiv:0", "rlhf")
    assert (state.current, state.likes, state.dislikes) == (-1, 2, 1)
    assert store.forget_ratings_except([("email", "ada"), ("slack", "#papers")]) == {("email", "gone"): 1}
    assert store.forget_ratings("email", "ada") == 3
    assert store.ratings_of("email", "ada") == [] and store.ratings_of("slack", "#papers") != []


def test_unsubscribing_keeps_the_ratings(store: Store) -> None:
    store.rate("email", "ada", "arxiv:1", "rlhf", 1, at=T0)
    store.unsubscribe("ada@example.org", at=T0)
    assert len(store.ratings_of("email", "ada")) == 1


# -- the tokens --------------------------------------------------------------------------------------------


def test_a_rating_token_names_recipient_profile_and_paper_and_nothing_can_be_swapped() -> None:
    token = rating_token(ADA, SECRET, issued=T0)
    assert read_rating_token(token, SECRET, now=T0) == ADA
    with pytest.raises(InvalidToken, match="expired"):
        read_rating_token(token, SECRET, now=T0 + timedelta(days=91))
    with pytest.raises(InvalidToken, match="bad signature"):
        read_rating_token(token, b"x" * 32, now=T0)
    unsubscribe = make_token("ada@example.org", SECRET, issued=T0)  # the same secret, another purpose
    with pytest.raises(InvalidToken, match="bad signature"):
        read_rating_token(unsubscribe, SECRET, now=T0)
    with pytest.raises(ValueError, match="cannot sign"):
        RatingSubject("email", "ada\x1fbob", "rlhf", "arxiv:1").encode()


# -- the pages ---------------------------------------------------------------------------------------------


async def test_get_shows_the_paper_and_what_changes_and_records_nothing(store: Store, serve: Serve) -> None:
    store.save_items("src", [PAPER], seen_at=T0)
    client = await serve(store)
    token = rating_token(ADA, SECRET, issued=T0)
    for choice, says in (("up", "move up"), ("down", "move down")):
        page = await client.get(f"/rate/{token}/{choice}")
        assert page.status_code == 200
        assert "Reward models &lt;b&gt;that&lt;/b&gt; generalise" in page.text  # escaped
        assert says in page.text and "rlhf" in page.text and 'method="post"' in page.text
        assert page.headers["cache-control"] == "no-store"
    assert stored(store) == []
    assert (await client.get(f"/rate/{token}/sideways")).status_code == 404


async def test_post_records_once_repeats_are_no_ops_and_a_change_replaces(store: Store, serve: Serve) -> None:
    store.save_items("src", [PAPER], seen_at=T0)
    client = await serve(store)
    token = rating_token(ADA, SECRET, issued=T0)
    for _ in range(2):
        done = await client.post(f"/rate/{token}", data={"rating": "up"})
        assert done.status_code == 200 and "more like this" in done.text and "1 👍 · 0 👎" in done.text
    assert stored(store) == [("email", "ada", "arxiv:2612.00001", "rlhf", 1)]
    changed = await client.post(f"/rate/{token}", data={"rating": "down"})
    assert "fewer like this" in changed.text and "0 👍 · 1 👎" in changed.text
    assert stored(store) == [("email", "ada", "arxiv:2612.00001", "rlhf", -1)]
    again = await client.get(f"/rate/{token}/down")
    assert "You rated this paper 👎 already; nothing changes" in again.text
    cleared = await client.post(f"/rate/{token}", data={"rating": "clear"})
    assert "Rating withdrawn" in cleared.text and stored(store) == []
    bad = await client.post(f"/rate/{token}", data={"rating": "sideways"})
    assert bad.status_code == 400 and stored(store) == []


async def test_a_rating_for_a_paper_no_longer_kept_still_counts(store: Store, serve: Serve) -> None:
    client = await serve(store)
    token = rating_token(ADA, SECRET, issued=T0)
    page = await client.get(f"/rate/{token}/up")
    assert page.status_code == 200 and "arxiv:2612.00001" in page.text
    assert (await client.post(f"/rate/{token}", data={"rating": "up"})).status_code == 200
    assert len(stored(store)) == 1


def _altered(token: str) -> str:
    """The payload of ada's token with bob's name in it, the MAC kept: what a curious reader would try."""
    import base64
    payload, mac = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).replace(b"ada", b"bob")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + mac


@pytest.mark.parametrize("case", ["forged", "altered", "cross-recipient", "expired", "future", "unsubscribe"])
async def test_bad_rating_links_get_a_clear_page_and_record_nothing(store: Store, serve: Serve, case: str) -> None:
    client = await serve(store)
    ada = rating_token(ADA, SECRET, issued=T0)
    token = {
        "forged": rating_token(ADA, b"not-our-secret-at-all-000000", issued=T0),
        "altered": ada[:-4] + ("AAAA" if not ada.endswith("AAAA") else "BBBB"),
        "cross-recipient": _altered(ada),
        "expired": rating_token(ADA, SECRET, issued=T0 - timedelta(days=120)),
        "future": rating_token(ADA, SECRET, issued=T0 + timedelta(days=3)),
        "unsubscribe": make_token("ada@example.org", SECRET, issued=T0),
    }[case]
    status = 410 if case == "expired" else 400
    for response in (await client.get(f"/rate/{token}/up"), await client.post(f"/rate/{token}", data={"rating": "up"})):
        assert response.status_code == status, (case, response.text[:200])
        title = re.search(r"<h1[^>]*>(.*?)</h1>", response.text)
        assert title is not None and title[1] == ("This link has expired" if case == "expired"
                                                  else "This link is not valid")
        assert "Traceback" not in response.text
    assert store.rating_counts() == []


async def test_a_database_outage_is_a_503_to_retry(store: Store, serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    client = await serve(store)
    token = rating_token(ADA, SECRET, issued=T0)

    def down(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(store, "rate", down)
    response = await client.post(f"/rate/{token}", data={"rating": "up"})
    assert response.status_code == 503 and response.headers["retry-after"] == "300"


# -- Slack's buttons ---------------------------------------------------------------------------------------


def slack_request(body: bytes, *, secret: bytes = SLACK_SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    signature = "v0=" + hmac.new(secret, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded"}


def button_click(token: str, action: str = "digestbot_rate_up", response_url: str | None = None) -> bytes:
    payload: dict[str, Any] = {"type": "block_actions", "user": {"id": "U1"}, "actions": [
        {"type": "button", "action_id": action, "value": token, "block_id": "b1"}]}
    if response_url:
        payload["response_url"] = response_url
    return urlencode({"payload": json.dumps(payload)}).encode()


async def test_slack_buttons_record_only_with_a_signature_that_verifies(store: Store, serve: Serve) -> None:
    client = await serve(store, slack_signing_secret=SLACK_SECRET)
    subject = RatingSubject("slack", "#papers", "rlhf", "arxiv:2612.00001")
    body = button_click(rating_token(subject, SECRET, issued=T0))
    refused = [
        await client.post("/slack/actions", content=body, headers=slack_request(body, secret=b"wrong")),
        await client.post("/slack/actions", content=body, headers=slack_request(body, at=time.time() - 600)),
        await client.post("/slack/actions", content=body,
                          headers={**slack_request(body), "X-Slack-Signature": "v0=" + "0" * 64}),
        await client.post("/slack/actions", content=body.replace(b"up", b"down"), headers=slack_request(body)),
    ]
    assert [r.status_code for r in refused] == [401] * 4
    assert store.rating_counts() == []
    accepted = await client.post("/slack/actions", content=body, headers=slack_request(body))
    assert accepted.status_code == 200
    assert [(r.item_id, r.rating) for r in store.ratings_of("slack", "#papers")] == [("arxiv:2612.00001", 1)]
    down = button_click(rating_token(subject, SECRET, issued=T0), "digestbot_rate_down")
    assert (await client.post("/slack/actions", content=down, headers=slack_request(down))).status_code == 200
    assert [r.rating for r in store.ratings_of("slack", "#papers")] == [-1]
    forged = button_click(rating_token(subject, b"another-secret-0000000000000", issued=T0))
    response = await client.post("/slack/actions", content=forged, headers=slack_request(forged))
    assert response.status_code == 400 and [r.rating for r in store.ratings_of("slack", "#papers")] == [-1]


async def test_the_person_who_clicked_is_told_what_the_click_did(store: Store, serve: Serve) -> None:
    """Slack shows nothing after a button click unless the app answers: an ephemeral message through the click's
    response_url (here a local server) names the paper and what changes."""
    from aiohttp import web

    heard: list[dict[str, Any]] = []

    async def response_url(request: web.Request) -> web.Response:
        heard.append(await request.json())
        return web.Response(text="ok")

    hook = web.Application()
    hook.router.add_post("/actions/T1/B1", response_url)
    runner = web.AppRunner(hook)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        store.save_items("src", [PAPER], seen_at=T0)
        client = await serve(store, slack_signing_secret=SLACK_SECRET)
        subject = RatingSubject("slack", "#papers", "rlhf", PAPER.id)
        body = button_click(rating_token(subject, SECRET, issued=T0), "digestbot_rate_down",
                            response_url=f"http://127.0.0.1:{port}/actions/T1/B1")
        assert (await client.post("/slack/actions", content=body, headers=slack_request(body))).status_code == 200
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
    assert heard == [{"response_type": "ephemeral", "replace_original": False,
                      "text": "👎 Recorded: papers like “Reward models &lt;b&gt;that&lt;/b&gt; generalise” move "
                              "down in the rlhf digests here."}]


async def test_slack_actions_are_off_without_a_signing_secret(store: Store, serve: Serve) -> None:
    client = await serve(store)
    body = button_click(rating_token(ADA, SECRET, issued=T0))
    response = await client.post("/slack/actions", content=body, headers=slack_request(body))
    assert response.status_code == 404 and store.rating_counts() == []


# -- the command -------------------------------------------------------------------------------------------


def test_feedback_lists_ratings_and_what_was_learned_and_reset_forgets(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'bot.db'}"
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\ndatabase = "{database}"\n[smtp]\nhost = "localhost"\nsender = "d@example.org"\n'
                      '[profiles.rlhf]\nkeywords = ["reward model"]\n'
                      '[[subscribers]]\nname = "ada"\nemail = "ada@example.org"\nprofiles = ["rlhf"]\n')
    papers = [Item(id=f"arxiv:{i}", title=title, url=f"https://arxiv.org/abs/{i}", abstract=abstract)
              for i, (title, abstract) in enumerate([
                  ("Reward models for preference optimisation", "Direct preference optimisation of reward models."),
                  ("Preference learning with reward models", "Pairwise preference data trains the reward model."),
                  ("Reward models for video diffusion", "A reward model scores generated video frames."),
                  ("Reward hacking in robots", "Robots exploit the reward model.")])]
    with Store.open(database) as store:
        store.save_items("src", papers, seen_at=T0)
        for item_id, rating in (("arxiv:0", 1), ("arxiv:1", 1), ("arxiv:2", -1)):
            store.rate("email", "ada", item_id, "rlhf", rating, at=T0)
        store.rate("email", "left", "arxiv:0", "rlhf", 1, at=T0)
    listed = digestbot("feedback", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["recipient"] for line in listed.stdout.splitlines()] == ["ada", "left"]
    shown = digestbot("feedback", "--config", str(config), "--recipient", "ada@example.org", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert [r["id"] for r in report["ratings"]] == ["arxiv:0", "arxiv:1", "arxiv:2"]
    learned = report["learned"]["rlhf"]
    assert (learned["likes"], learned["dislikes"]) == (2, 1)
    assert "preference" in learned["more_of"] and "video" in learned["less_of"], learned
    table = digestbot("feedback", "--config", str(config), "--recipient", "ada")
    assert "more of: " in table.stdout and "Preference learning with reward models" in table.stdout
    unknown = digestbot("feedback", "reset", "--config", str(config), "--recipient", "nobody")
    assert unknown.returncode == 1 and "no recipient 'nobody'" in unknown.stderr
    reset = digestbot("feedback", "reset", "--config", str(config), "--recipient", "ada")
    assert reset.returncode == 0 and "forgot 3 ratings of ada (email)" in reset.stdout
    with Store.open(database) as store:
        assert store.ratings_of("email", "ada") == [] and len(store.ratings_of("email", "left")) == 1


def digestbot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=60,
                          check=False)


# -- planning ----------------------------------------------------------------------------------------------


def _planned(store: Store, ratings: list[tuple[str, str, int]],
             profiles: list[str]) -> dict[str, list[tuple[str, float, str]]]:
    """Plan a digest for ada (who rated) and bob (who did not), both reading `profiles`: (id, score, profile) each."""
    from bot.config import parse_config
    from bot.outbox.plan import plan_deliveries
    from bot.scoring import compile_profiles

    papers = [Item(id=f"arxiv:2612.{i:05d}", title=title, url=f"https://arxiv.org/abs/2612.{i:05d}", abstract=abstract)
              for i, (title, abstract) in enumerate([
                  ("Reward models for preference optimisation", "A reward model trained on preference pairs."),
                  ("Preference learning without a reward model", "Direct preference optimisation of policies."),
                  ("Reward models for video generation", "A reward model scores video diffusion samples."),
                  ("Recommender systems with reward models", "A recommender learns from click rewards."),
                  ("Collaborative filtering at scale", "Matrix factorisation for a recommender."),
                  ("Video recommendation with transformers", "A recommender for short videos."),
                  ("Reward hacking in reinforcement learning", "Agents exploit a learned reward model.")])]
    store.save_items("src", papers, seen_at=T0)
    for item_id, profile, rating in ratings:
        store.rate("email", "ada", item_id, profile, rating, at=T0)
    reader = {"profiles": profiles, "schedule": "daily 08:00", "timezone": "UTC", "max_items": 10}
    config = parse_config({
        "smtp": {"host": "localhost", "sender": "d@example.org"},
        "profiles": {"rlhf": {"keywords": ["reward model", "preference"]},
                     "recsys": {"keywords": ["recommender", "collaborative filtering"]}},
        "subscribers": [{"name": "ada", "email": "ada@example.org", **reader},
                        {"name": "bob", "email": "bob@example.org", **reader}]})
    matcher = compile_profiles(config.profiles, corpus=papers)
    plan_deliveries(config, store, matcher, now=T0 + timedelta(minutes=30))
    plan_deliveries(config, store, matcher, now=T0 + timedelta(hours=1, minutes=5))
    return {row.recipient: [(e.id, e.score, e.profile) for e in row.payload.items]
            for row in store.deliveries(None, limit=10)}


def test_a_profile_the_reader_did_not_rate_is_planned_as_without_ratings(store: Store) -> None:
    """ada rated only rlhf papers: her recsys papers keep their scores, and with no ratings at all she would get
    exactly bob's digest (the merged path and `Matches.best` agree)."""
    planned = _planned(store, [("arxiv:2612.00000", "rlhf", 1), ("arxiv:2612.00002", "rlhf", -1)],
                       ["rlhf", "recsys"])
    ada, bob = planned["ada"], planned["bob"]
    assert sorted(i for i, _, _ in ada) == sorted(i for i, _, _ in bob)
    recsys_ada = {i: s for i, s, p in ada if p == "recsys"}
    recsys_bob = {i: s for i, s, p in bob if p == "recsys"}
    assert recsys_ada and all(recsys_bob.get(i, s) == s for i, s in recsys_ada.items())
    assert recsys_ada["arxiv:2612.00003"] == 3.0  # its rlhf score went down, so recsys (unmoved) names it now
    moved = {i: s for i, s, p in ada if p == "rlhf"}
    assert moved != {i: s for i, s, p in bob if p == "rlhf"}  # her rlhf ranking listened


def test_planning_and_rank_ratings_give_the_same_scores(store: Store) -> None:
    """One engine: what planning sends a reader with ratings is what `rank --ratings` prints for the same papers."""
    from bot.config import parse_config
    from bot.scoring import compile_profiles
    from bot.scoring.feedback import Rating, taste_of, with_feedback

    rated = [("arxiv:2612.00000", "rlhf", 1), ("arxiv:2612.00006", "rlhf", -1)]
    planned = _planned(store, rated, ["rlhf"])["ada"]
    papers = list(store.get_items([f"arxiv:2612.{i:05d}" for i in range(7)]).values())
    config = parse_config({"profiles": {"rlhf": {"keywords": ["reward model", "preference"]}}})
    matcher = compile_profiles(config.profiles, corpus=papers)
    taste = taste_of([Rating(i, r) for i, _, r in rated], {p.id: p for p in papers}, papers)
    ranked = with_feedback(matcher.rank(papers, "rlhf", with_below_min=True), taste, min_score=1.0)
    assert [s.item.id for s in ranked] == [i for i, _, _ in planned]
    assert [s.score for s in ranked] == pytest.approx([s for _, s, _ in planned], abs=1e-4)  # the payload keeps 4
