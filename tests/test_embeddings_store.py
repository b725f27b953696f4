"""Item vectors kept in the database: each paper is embedded once for its lifetime, whatever restarts or second
processes do; an edited abstract is embedded again; a cycle embeds its new papers in one batch before planning;
the `bot.semantic` switch ("auto", "on", "off") says what happens when the extra is missing.

The model is counted by wrapping its `encode` (the store is real: SQLite in a temp dir, PostgreSQL when
DIGESTBOT_TEST_DATABASE_URL is set). Tests that need the model are skipped when the `semantic` extra is absent;
the others fake a missing extra by patching `bot.scoring.semantic.available`.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from bot import cli
from bot.app import App
from bot.config import Config, parse_config
from bot.models import Item, ItemVector
from bot.notify.maildir import MaildirSink
from bot.scoring import semantic
from bot.scoring.embeddings import ItemVectors, item_text, text_hash, to_bytes
from bot.sources.fetch import Fetcher
from bot.store import Store

ROOT = Path(__file__).resolve().parents[1]
HF_API = ROOT / "bot" / "demo_data" / "hf_api_daily_papers_2026-06-12.json"
T0 = datetime(2026, 6, 12, 6, 0, tzinfo=UTC)
DESCRIPTION = "Agents that use tools and browse the web to solve multi-step tasks."


def papers(n: int, *, abstract: str = "We study {i} things about language models.") -> list[Item]:
    """`n` papers with ids no other test uses (the shared model's memory must not have seen them)."""
    tag = secrets.token_hex(4)
    return [Item(id=f"arxiv:{tag}.{i}", title=f"Paper {i} of {tag}", abstract=abstract.format(i=i),
                 url=f"https://arxiv.org/abs/{tag}.{i}") for i in range(n)]


def saved(store: Store, items: Sequence[Item]) -> list[Item]:
    store.save_items("test", items, seen_at=T0)
    return list(items)


class Counting:
    """Wraps a callable that embeds texts; keeps every text it was given."""

    def __init__(self, encode: Callable[..., Any]) -> None:
        self.encode = encode
        self.texts: list[str] = []

    def __call__(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        self.texts.extend(texts)
        return self.encode(texts, *args, **kwargs)


def fake_embed(texts: Sequence[str]) -> Any:
    """A deterministic stand-in for the model (unit vectors from the text's hash), for tests of the plumbing."""
    rows = [np.frombuffer(text_hash(t) * 6, dtype=np.uint8).astype(np.float32) + 1.0 for t in texts]
    return np.stack([row / np.linalg.norm(row) for row in rows]) if rows else np.zeros((0, 96), np.float32)


# -- the store ------------------------------------------------------------------------------------------------


def test_vectors_round_trip_many_at_once_per_model(store: Store) -> None:
    items = saved(store, papers(450))  # more than one chunk of 200
    vectors = [ItemVector(item.id, text_hash(item_text(item)), to_bytes(fake_embed([item_text(item)])[0]))
               for item in items]
    assert store.save_vectors(vectors, model="m1") == 450
    got = store.get_vectors([item.id for item in items] + ["arxiv:unknown"], model="m1")
    assert got == {vector.item_id: vector for vector in vectors}
    assert store.get_vectors([items[0].id], model="m2") == {}  # another model's vectors count as missing
    assert store.vector_count() == store.vector_count("m1") == 450


def test_saving_again_replaces_and_unstored_items_are_skipped(store: Store) -> None:
    item = saved(store, papers(1))[0]
    store.save_vectors([ItemVector(item.id, b"old-hash", b"\x00" * 8)], model="m1")
    written = store.save_vectors([ItemVector(item.id, b"new-hash", b"\x01" * 8),
                                  ItemVector("arxiv:never-stored", b"h", b"\x02" * 8)], model="m2")
    assert written == 1
    assert store.get_vectors([item.id], model="m1") == {}
    assert store.get_vectors([item.id], model="m2") == {item.id: ItemVector(item.id, b"new-hash", b"\x01" * 8)}
    assert store.save_vectors([], model="m2") == 0


# -- the embedder's vectors, with a stand-in model --------------------------------------------------------------


def test_a_restart_finds_every_vector_stored(open_store: Callable[[], Store]) -> None:
    items = saved(open_store(), papers(40))
    first = Counting(fake_embed)
    before = ItemVectors("fake", 96, cache_items=100, store=open_store()).get(items, first)
    assert len(first.texts) == 40
    second = Counting(fake_embed)
    after = ItemVectors("fake", 96, cache_items=100, store=open_store()).get(items, second)  # "another process"
    assert second.texts == []
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_more_items_than_memory_holds_all_come_back_in_order(store: Store) -> None:
    items = saved(store, papers(30))
    vectors = ItemVectors("fake", 96, cache_items=5, store=store)
    first = vectors.get(items, fake_embed)
    assert [v.tobytes() for v in first] == [to_bytes(fake_embed([item_text(i)])[0]) for i in items]
    counting = Counting(fake_embed)
    again = vectors.get(list(reversed(items)), counting)
    assert counting.texts == [] and vectors.cached() == 5
    assert [v.tobytes() for v in again] == [v.tobytes() for v in reversed(first)]


def test_a_failing_store_costs_a_warning_not_the_vectors(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    items = saved(store, papers(3))
    with store._engine.begin() as connection:  # a real failure: the table is gone
        connection.execute(text("DROP TABLE item_embeddings"))
    vectors = ItemVectors("fake", 96, cache_items=10, store=store)
    with caplog.at_level(logging.DEBUG, logger="bot.scoring.embeddings"):
        got = vectors.get(items, fake_embed)
        vectors.get(papers(2), fake_embed)
    assert len(got) == 3 and vectors.embedded == 5
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "stored item vectors" in warned[0].getMessage()


# -- the real model ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_process(model: semantic.Embedder) -> semantic.Embedder:
    """Another Embedder, with its own memory: what a restarted or second process would hold."""
    return semantic.Embedder()


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> Callable[[semantic.Embedder], Counting]:
    """Count the texts a model embeds, by wrapping its `encode`."""

    def wrap(embedder: semantic.Embedder) -> Counting:
        counting = Counting(embedder._model.encode)
        monkeypatch.setattr(embedder._model, "encode", counting)
        return counting

    return wrap


@pytest.fixture
def detached(model: semantic.Embedder, second_process: semantic.Embedder) -> Iterator[None]:
    """The embedders leave no store attached behind them."""
    yield
    for embedder in (model, second_process):
        embedder._vectors.attach(None)


def test_a_new_store_and_embedder_on_the_same_database_embed_nothing(
        model: semantic.Embedder, second_process: semantic.Embedder, db_url: str,
        encoded: Callable[[semantic.Embedder], Counting], detached: None) -> None:
    with Store.open(db_url) as store:
        items = saved(store, papers(20))
        model.attach(store)
        counting = encoded(model)
        first = model.embed_items(items)
        assert len(counting.texts) == 20 and store.vector_count(semantic.MODEL_NAME) == 20
    with Store.open(db_url) as store:  # the restart: a new Store, another Embedder
        second_process.attach(store)
        counting = encoded(second_process)
        again = second_process.embed_items(items)
    assert counting.texts == []
    assert all(semantic.cosine(a, b) == 1.0 for a, b in zip(first, again, strict=True))
    assert all(v.shape == (384,) and abs(float(v @ v) - 1) < 1e-4 for v in again)


def test_an_abstract_filled_in_later_is_embedded_again(
        model: semantic.Embedder, second_process: semantic.Embedder, db_url: str,
        encoded: Callable[[semantic.Embedder], Counting], detached: None) -> None:
    with Store.open(db_url) as store:
        bare = saved(store, papers(3, abstract=""))  # a listing that shows titles only
        model.attach(store)
        model.embed_items(bare)
        later = [Item(id=item.id, title=item.title, url=item.url, abstract="An abstract arrives with the feed.")
                 for item in bare]
        store.save_items("feed", later, seen_at=T0 + timedelta(hours=1))  # the stored abstract is filled in
        current = list(store.get_items([item.id for item in bare]).values())
    assert [item.abstract for item in current] == [item.abstract for item in later]
    with Store.open(db_url) as store:
        second_process.attach(store)
        counting = encoded(second_process)
        vectors = second_process.embed_items([current[0], bare[1], current[2]])
        stored = store.get_vectors([item.id for item in bare], model=semantic.MODEL_NAME)
    assert counting.texts == [item_text(current[0]), item_text(current[2])]  # bare[1]'s text is unchanged
    assert stored[current[0].id].text_hash == text_hash(item_text(current[0]))
    assert stored[current[0].id].vector == to_bytes(vectors[0])


# -- the cycle and the `bot.semantic` switch ----------------------------------------------------------------------


@pytest.fixture
def fresh() -> Iterator[None]:
    """A clean slate for the shared model (restored afterwards, so the model loads once per run)."""
    saved_state = semantic._shared, semantic._failed, semantic._failure
    semantic.reset()
    yield
    semantic._shared, semantic._failed, semantic._failure = saved_state


@pytest.fixture
async def mail(tmp_path: Path) -> AsyncIterator[MaildirSink]:
    async with MaildirSink(tmp_path / "Maildir") as sink:
        yield sink


def make_config(db_url: str, mail: MaildirSink, mode: Any = "auto", *, description: str | None = DESCRIPTION,
                profile_semantic: bool = True) -> Config:
    """One local source (30 Hugging Face papers), one profile with a description, one reader with alerts (so that
    every cycle scores)."""
    profile: dict[str, Any] = {"keywords": ["agent", "tool"], "semantic": profile_semantic}
    if description is not None:
        profile["description"] = description
    return parse_config({
        "bot": {"database": db_url, "semantic": mode},
        "smtp": {"host": "127.0.0.1", "port": mail.port, "security": "none", "sender": "Digest <d@example.org>"},
        "sources": [{"name": "hf-api", "kind": "hf_api", "url": str(HF_API), "max_pages": 1}],
        "profiles": {"agents": profile},
        "subscribers": [{"name": "ada", "email": "ada@example.org", "profiles": ["agents"], "alert_min_score": 3}],
    })


class CheckedApp(App):
    """The shipped App; records whether every stored item had its vector when planning began."""

    stored_when_planning: tuple[int, int] | None = None

    def _plan(self, now: datetime) -> Any:
        self.stored_when_planning = (self.store.vector_count(), self.store.item_count())
        return super()._plan(now)


async def run_cycle(config: Config, now: datetime) -> CheckedApp:
    async with Fetcher(config.bot.user_agent, min_host_interval=0.0) as fetcher:
        app = CheckedApp(config, fetcher=fetcher)
        async with app:
            await app.cycle(now=now)
    return app


async def test_a_cycle_embeds_its_new_papers_before_planning_and_never_again(
        model: semantic.Embedder, db_url: str, mail: MaildirSink,
        encoded: Callable[[semantic.Embedder], Counting], detached: None) -> None:
    config = make_config(db_url, mail, "on")
    counting = encoded(model)
    app = await run_cycle(config, T0)
    with Store.open(db_url) as store:
        items = store.items_first_seen_between(None, T0)
        assert len(items) == 30 and store.vector_count(semantic.MODEL_NAME) == 30
    assert app.stored_when_planning == (30, 30)  # embedded at refresh time, in one batch
    texts = Counter(counting.texts)
    assert all(texts[item_text(item)] == 1 for item in items)  # planning found them: none embedded twice
    counting.texts.clear()
    await run_cycle(config, T0 + timedelta(hours=2))  # a later cycle (a restart: a new App, a new Store)
    assert not set(counting.texts) & {item_text(item) for item in items}
    assert model._vectors.store is None  # the App let go of its store


async def test_on_without_the_extra_logs_one_error_and_scores_with_keywords(
        db_url: str, mail: MaildirSink, monkeypatch: pytest.MonkeyPatch, fresh: None,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(semantic, "available", lambda: False)
    monkeypatch.setattr(semantic, "Embedder", lambda *a, **k: pytest.fail("model loaded"))
    config = make_config(db_url, mail, "on")
    with caplog.at_level(logging.ERROR):
        async with Fetcher(config.bot.user_agent, min_host_interval=0.0) as fetcher, \
                App(config, fetcher=fetcher) as app:
            report = await app.cycle(now=T0)
            await app.cycle(now=T0 + timedelta(hours=2))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "bot.semantic" in errors[0] and "pip install 'digestbot[semantic]'" in errors[0]
    assert report.refreshed[0].new == 30
    with Store.open(db_url) as store:
        assert store.vector_count() == 0
        kinds = {reason.kind for row in store.deliveries() for entry in row.payload.items for reason in entry.reasons}
    assert kinds and "semantic" not in kinds  # alerts went out, on keywords alone


@pytest.mark.parametrize("mode, extra", [("off", True), ("auto", False)])
async def test_off_or_auto_without_the_extra_never_loads_the_model(
        db_url: str, mail: MaildirSink, monkeypatch: pytest.MonkeyPatch, fresh: None, mode: str, extra: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(semantic, "available", lambda: extra)
    monkeypatch.setattr(semantic, "Embedder", lambda *a, **k: pytest.fail("model loaded"))
    with caplog.at_level(logging.WARNING):
        app = await run_cycle(make_config(db_url, mail, mode), T0)
    assert app.stored_when_planning == (0, 30)
    assert not [r for r in caplog.records if "semantic" in r.getMessage()]


def test_on_without_the_extra_fails_check_config_naming_the_key(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[bot]\nsemantic = "on"\n\n[profiles.agents]\nkeywords = ["agent"]\n'
                    f'description = "{DESCRIPTION}"\n', encoding="utf-8")
    monkeypatch.setattr(semantic, "available", lambda: False)
    result = CliRunner().invoke(cli.app, ["check-config", "--config", str(path)])
    assert result.exit_code == 1
    assert "bot.semantic: \"on\", but the `semantic` extra is not installed" in result.stderr
    assert "pip install 'digestbot[semantic]'" in result.stderr


@pytest.mark.parametrize("mode, extra, says", [
    ("auto", False, "semantic similarity auto: off, keywords only (extra not installed: pip install "),
    ("auto", True, "semantic similarity auto: on (extra installed)"),
    ("off", True, "semantic similarity off"),
])
def test_check_config_says_what_the_switch_comes_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
                                                    extra: bool, says: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[bot]\nsemantic = "{mode}"\n\n[profiles.agents]\nkeywords = ["agent"]\n', encoding="utf-8")
    monkeypatch.setattr(semantic, "available", lambda: extra)
    monkeypatch.setattr(semantic, "Embedder", lambda *a, **k: pytest.fail("model loaded"))
    result = CliRunner().invoke(cli.app, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.stderr
    assert says in result.stdout


def test_on_with_the_model_passes_check_config(model: semantic.Embedder, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[bot]\nsemantic = "on"\n\n[profiles.agents]\nkeywords = ["agent"]\n'
                    f'description = "{DESCRIPTION}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "semantic similarity on (model loaded)" in result.stdout


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("on", "on"), ("off", "off"), (True, "on"),
                                             (False, "off")])
def test_the_switch_reads_words_and_booleans(value: Any, expected: str) -> None:
    assert parse_config({"bot": {"semantic": value}}).bot.semantic == expected


def test_a_bad_switch_value_names_the_key() -> None:
    with pytest.raises(Exception) as caught:
        parse_config({"bot": {"semantic": "yes"}})
    assert getattr(caught.value, "problems", None) == ['bot.semantic: expected "auto", "on" or "off", got \'yes\'']


def test_on_without_descriptions_is_a_warning() -> None:
    from bot.config import config_warnings

    config = parse_config({"bot": {"semantic": "on"}, "profiles": {"a": {"keywords": ["x"], "description": "d",
                                                                          "semantic": False}}})
    assert any(w.startswith("bot.semantic:") and "description" in w for w in config_warnings(config))


def test_keyword_only_cycles_import_nothing_heavy(tmp_path: Path) -> None:
    """A keyword-only install runs a cycle without importing torch or sentence-transformers."""
    script = f"""
import asyncio, sys
from datetime import UTC, datetime
from bot.app import App
from bot.cli import app as _cli
from bot.config import parse_config
config = parse_config({{"bot": {{"database": "sqlite:///{tmp_path / 'db.sqlite3'}", "semantic": "off"}},
    "sources": [{{"name": "hf-api", "kind": "hf_api", "url": {str(HF_API)!r}, "max_pages": 1}}],
    "profiles": {{"agents": {{"keywords": ["agent"], "description": "agents"}}}}}})
async def main():
    async with App(config) as app:
        report = await app.cycle(now=datetime(2026, 6, 12, 6, tzinfo=UTC))
    assert report.refreshed[0].new == 30, report
asyncio.run(main())
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
assert not heavy, heavy
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=50,
                            check=False)
    assert result.returncode == 0, result.stderr


async def test_preview_reuses_the_vectors_the_bot_stored(
        model: semantic.Embedder, db_url: str, mail: MaildirSink, tmp_path: Path,
        encoded: Callable[[semantic.Embedder], Counting], detached: None) -> None:
    await run_cycle(make_config(db_url, mail, "auto"), T0)
    path = tmp_path / "config.toml"
    path.write_text(f'[bot]\ndatabase = "{db_url}"\n\n[profiles.agents]\nkeywords = ["agent", "tool"]\n'
                    f'description = "{DESCRIPTION}"\n', encoding="utf-8")
    model._vectors._cache.clear()  # preview runs in a process of its own
    counting = encoded(model)
    result = CliRunner().invoke(cli.app, ["preview", "--config", str(path), "--profile", "agents", "--json",
                                          "--now", (T0 + timedelta(hours=1)).isoformat()])
    assert result.exit_code == 0, result.output
    with Store.open(db_url) as store:
        stored = {item_text(item) for item in store.items_first_seen_between(None, T0)}
    assert len(stored) == 30 and not stored & set(counting.texts)
    assert model._vectors.store is None


def test_rank_with_semantic_off_never_loads_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      fresh: None) -> None:
    monkeypatch.setattr(semantic, "available", lambda: True)
    monkeypatch.setattr(semantic, "Embedder", lambda *a, **k: pytest.fail("model loaded"))
    path = tmp_path / "config.toml"
    path.write_text(f'[bot]\nsemantic = "off"\n\n[profiles.agents]\nkeywords = ["agent"]\n'
                    f'description = "{DESCRIPTION}"\n', encoding="utf-8")
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "x:1", "title": "A web agent", "abstract": "An agent that browses."}\n', encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["rank", "--config", str(path), "--items", str(items), "--json"])
    assert result.exit_code == 0, result.output
    assert '"id": "x:1"' in result.stdout
