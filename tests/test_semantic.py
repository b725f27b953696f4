"""Semantic similarity (`bot.scoring.semantic`, the `semantic` extra): the model loads offline, similar texts score
higher, fusion adds a "semantic" reason, the config switch turns it off, and a model that fails to load or to embed
leaves keywords only, with a warning.

Tests that need the model are skipped when the extra is not installed; the fallback tests run everywhere.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from bot.config import ProfileConfig
from bot.models import Item
from bot.scoring import compile_profiles, semantic

DESCRIPTION = "Training language models from human preference data: reward models, RLHF, DPO."
RELATED = Item(id="arxiv:1", title="Learning to summarize from human feedback",
               abstract="We fine-tune a language model with a learned reward model trained on comparisons "
                        "written by people, which makes the summaries better liked by human raters.", url="u1")
UNRELATED = Item(id="arxiv:2", title="Image-text alignment for satellite imagery",
                 abstract="We align aerial photographs with map captions using contrastive pretraining on a new "
                          "remote sensing dataset of land-use labels.", url="u2")
KEYWORD = Item(id="arxiv:3", title="Direct preference optimization without a reference",
               abstract="A variant of DPO for language models.", url="u3")
EXCLUDED = Item(id="arxiv:4", title="A survey of DPO for chatbots",
                abstract="A survey of preference optimization with human feedback.", url="u4")


def profile(**kwargs: Any) -> dict[str, ProfileConfig]:
    fields: dict[str, Any] = {"keywords": ["DPO"], "description": DESCRIPTION}
    fields.update(kwargs)
    return {"rlhf": ProfileConfig(**fields)}


@pytest.fixture
def fresh() -> Iterator[None]:
    """A clean slate for the shared model (restored afterwards, so the model loads once per run)."""
    saved = semantic._shared, semantic._failed
    semantic.reset()
    yield
    semantic._shared, semantic._failed = saved


def test_model_loads_offline_from_the_package(model: semantic.Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("network access during model load")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    path = semantic.model_dir()
    assert (path / "model.safetensors").is_file()
    embedder = semantic.Embedder(path)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    vectors = embedder.embed(["a sentence", "another one"])
    assert vectors.shape == (2, 384)
    assert abs(float(vectors[0] @ vectors[0]) - 1.0) < 1e-4  # normalised


def test_similar_texts_score_higher_than_unrelated(model: semantic.Embedder) -> None:
    described, related, unrelated = model.embed([DESCRIPTION, semantic.item_text(RELATED),
                                                 semantic.item_text(UNRELATED)])
    assert semantic.cosine(described, related) > semantic.cosine(described, unrelated) + 0.2
    assert semantic.semantic_weight(semantic.cosine(described, unrelated) - semantic.RAW_FLOOR) == 0.0
    assert semantic.semantic_weight(semantic.cosine(described, related) - semantic.RAW_FLOOR) >= 1.0


def test_items_are_embedded_once(model: semantic.Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = semantic.Embedder(semantic.model_dir(), cache_items=10)
    first = embedder.embed_items([RELATED, UNRELATED])
    monkeypatch.setattr(embedder, "embed", lambda texts: pytest.fail("embedded again"))
    again = embedder.embed_items([UNRELATED, RELATED])
    assert semantic.cosine(first[0], again[1]) == 1.0
    assert embedder.cached() == 2


def test_meaning_adds_a_reason_and_a_paper_squarely_on_topic_passes_without_a_keyword(
        model: semantic.Embedder) -> None:
    matcher = compile_profiles(profile(), corpus=[RELATED, UNRELATED, KEYWORD])
    ranked = matcher.rank([RELATED, UNRELATED, KEYWORD], "rlhf", with_below_min=True)
    by_id = {s.item.id: s for s in ranked}
    similar = [r for r in by_id["arxiv:1"].reasons if r.kind == "semantic"]
    assert len(similar) == 1
    assert (similar[0].term, similar[0].field, similar[0].count) == ("similar to your description",
                                                                    "title+abstract", 1)
    assert similar[0].weight >= 1.0  # on the description's topic: enough alone for the default min_score
    assert ranked[0].item.id == "arxiv:3"  # the keyword (and the same topic) still comes first
    assert "arxiv:2" not in by_id  # satellite imagery shares no meaning, no words: nothing at all
    keyword_only = compile_profiles(profile(), corpus=[RELATED, UNRELATED, KEYWORD], semantic=False)
    assert by_id["arxiv:3"].score > keyword_only.rank([KEYWORD], "rlhf")[0].score  # fused in one score
    assert keyword_only.rank([RELATED], "rlhf") == []  # without meaning, description words alone never pass
    assert [s.item.id for s in matcher.rank([RELATED, UNRELATED, KEYWORD], "rlhf")] == ["arxiv:3", "arxiv:1"]


@pytest.mark.parametrize("min_score", [0.3, 1.0])
def test_every_path_agrees(model: semantic.Embedder, min_score: float) -> None:
    items = [RELATED, UNRELATED, KEYWORD, EXCLUDED]
    matcher = compile_profiles(profile(min_score=min_score), corpus=items)
    ranked = [(s.item.id, s.score) for s in matcher.rank(items, "rlhf")]
    assert "arxiv:1" in dict(ranked) and "arxiv:2" not in dict(ranked)
    assert [(s.item.id, s.score) for s in matcher.rank_all(items)["rlhf"]] == ranked
    assert [(s.item.id, s.score) for s in matcher.rank_all(items, top=2)["rlhf"]] == ranked[:2]
    assert sorted((s.item.id, s.score) for item in items for s in matcher.passing(item)) == sorted(ranked)
    assert {item.id: matcher.score(item)["rlhf"].score for item in items if "rlhf" in matcher.score(item)
            and matcher.score(item)["rlhf"].score >= min_score} == dict(ranked)
    for scored in matcher.rank(items, "rlhf"):  # the reasons are the score, term by term
        assert sum(r.weight for r in scored.reasons) == pytest.approx(scored.score, abs=1e-6)


def test_exclude_and_require_still_apply(model: semantic.Embedder) -> None:
    items = [RELATED, EXCLUDED]
    excluded = compile_profiles(profile(exclude=["survey"]), corpus=items)
    assert [s.item.id for s in excluded.rank(items, "rlhf", with_below_min=True)] == ["arxiv:1"]
    required = compile_profiles(profile(require=["chatbots"]), corpus=items)
    assert [s.item.id for s in required.rank(items, "rlhf", with_below_min=True)] == ["arxiv:4"]


def test_explain_names_the_semantic_reason(model: semantic.Embedder) -> None:
    scored = compile_profiles(profile()).rank([RELATED], "rlhf", with_below_min=True)[0]
    text = scored.explain(related=10)
    assert "; close to your description +" in text


def test_the_config_switch_turns_it_off(model: semantic.Embedder) -> None:
    for matcher in (compile_profiles(profile(semantic=False)), compile_profiles(profile(), semantic=False)):
        ranked = matcher.rank([RELATED, KEYWORD], "rlhf", with_below_min=True)
        assert ranked and all(r.kind != "semantic" for s in ranked for r in s.reasons)


def test_no_description_no_model(monkeypatch: pytest.MonkeyPatch, fresh: None) -> None:
    monkeypatch.setattr(semantic, "Embedder", lambda *a, **k: pytest.fail("model loaded"))
    compile_profiles(profile(description=None))


def test_without_the_extra_keywords_only(monkeypatch: pytest.MonkeyPatch, fresh: None) -> None:
    monkeypatch.setattr(semantic, "available", lambda: False)
    monkeypatch.setattr(semantic, "Embedder", lambda *a, **k: pytest.fail("model loaded"))
    ranked = compile_profiles(profile()).rank([RELATED, KEYWORD], "rlhf", with_below_min=True)
    assert ranked and all(r.kind != "semantic" for s in ranked for r in s.reasons)


def test_a_model_that_fails_to_load_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch, fresh: None,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any, **kwargs: Any) -> semantic.Embedder:
        raise OSError("model.safetensors is corrupt")

    monkeypatch.setattr(semantic, "available", lambda: True)
    monkeypatch.setattr(semantic, "Embedder", broken)
    expected = compile_profiles(profile(), semantic=False).rank([KEYWORD, RELATED], "rlhf", with_below_min=True)
    with caplog.at_level(logging.WARNING, logger="bot.scoring.semantic"):
        first = compile_profiles(profile())
        second = compile_profiles(profile())
    warnings = [r for r in caplog.records if "semantic similarity disabled" in r.getMessage()]
    assert len(warnings) == 1 and "model.safetensors is corrupt" in warnings[0].getMessage()
    for matcher in (first, second):
        assert matcher.rank([KEYWORD, RELATED], "rlhf", with_below_min=True) == expected


def test_a_model_that_fails_while_embedding_never_fails_a_cycle(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        def embed(self, texts: list[str]) -> list[list[float]]:
            return [[1.0] for _ in texts]

        def embed_items(self, items: list[Item]) -> list[Any]:
            raise RuntimeError("out of memory")

    similarity = semantic.Similarity(Failing(), {0: DESCRIPTION})  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="bot.scoring.semantic"):
        similarity.warm([RELATED])
        assert similarity.excess(RELATED) is None
    assert sum("the embedding model failed" in r.getMessage() for r in caplog.records) == 1
