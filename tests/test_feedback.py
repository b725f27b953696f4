"""Learning from 👍 / 👎 (`bot.scoring.feedback`): no ratings change nothing; a rating moves papers like the rated
one, within what the profile scored; `digestbot rank --ratings` is the contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.errors import ConfigError
from bot.models import Item
from bot.scoring import compile_profiles
from bot.scoring.feedback import PaperVectors, Rating, Taste, load_ratings, taste_of, with_feedback
from tests.test_cli import digestbot

PROFILES = {"rl": {"keywords": ["reinforcement learning"], "exclude": ["robot"]}}
ITEMS = [
    Item(id="a:1", title="Reinforcement learning for protein folding", url="https://x.org/1",
         abstract="We fold proteins with reinforcement learning and a structure predictor."),
    Item(id="a:2", title="Protein design with reinforcement learning", url="https://x.org/2",
         abstract="Reinforcement learning designs proteins; the structure predictor scores them."),
    Item(id="a:3", title="Reinforcement learning for chip placement", url="https://x.org/3",
         abstract="Reinforcement learning places macros on a chip floorplan."),
    Item(id="a:4", title="Chip floorplanning by reinforcement learning", url="https://x.org/4",
         abstract="Floorplans for chips from reinforcement learning agents."),
    Item(id="a:5", title="Reinforcement learning for robot grasping", url="https://x.org/5",
         abstract="A robot learns to grasp protein crystals with reinforcement learning."),
    Item(id="a:6", title="A survey of protein structure prediction", url="https://x.org/6",
         abstract="Structure predictors for proteins, surveyed."),
]


@pytest.fixture
def matcher():  # type: ignore[no-untyped-def]
    return compile_profiles(parse_config({"profiles": PROFILES}).profiles, corpus=ITEMS, semantic=False)


def ranked_ids(matcher, ratings: list[Rating]) -> list[str]:  # type: ignore[no-untyped-def]
    taste = taste_of(ratings, {item.id: item for item in ITEMS}, ITEMS)
    scored = matcher.rank(ITEMS, "rl", with_below_min=True)
    return [s.item.id for s in with_feedback(scored, taste, min_score=matcher.min_score("rl"))]


def test_no_ratings_is_exactly_the_profile_alone(matcher) -> None:  # type: ignore[no-untyped-def]
    alone = [s.item.id for s in matcher.rank(ITEMS, "rl")]
    assert ranked_ids(matcher, []) == alone
    assert ranked_ids(matcher, [Rating("not:stored", 1)]) == alone  # a rating of an unknown paper teaches nothing


def test_a_thumbs_up_lifts_papers_like_it_and_a_thumbs_down_sinks_them(matcher) -> None:  # type: ignore[no-untyped-def]
    liked = ranked_ids(matcher, [Rating("a:1", 1), Rating("a:3", -1)])
    assert liked.index("a:2") < liked.index("a:4")  # protein design like the 👍, chips like the 👎
    disliked = ranked_ids(matcher, [Rating("a:1", -1), Rating("a:3", 1)])
    assert disliked.index("a:4") < disliked.index("a:2")


def test_exclude_still_vetoes_and_unmatched_papers_stay_out(matcher) -> None:  # type: ignore[no-untyped-def]
    ids = ranked_ids(matcher, [Rating("a:5", 1), Rating("a:6", 1), Rating("a:1", 1)])
    assert "a:5" not in ids  # "robot" is excluded, however much the reader liked it
    assert "a:6" not in ids  # no keyword of the profile: a 👍 does not make it one of the profile's papers


def test_the_reason_names_a_liked_paper(matcher) -> None:  # type: ignore[no-untyped-def]
    taste = taste_of([Rating("a:1", 1), Rating("a:3", -1)], {item.id: item for item in ITEMS}, ITEMS)
    moved = with_feedback(matcher.rank(ITEMS, "rl", with_below_min=True), taste, min_score=0.0)
    design = next(s for s in moved if s.item.id == "a:2")
    assert "like a paper you rated 👍 (e.g. “Reinforcement learning for protein folding”)" in design.explain()
    chips = next(s for s in moved if s.item.id == "a:4")
    assert "like papers you rated 👎" in chips.explain()
    assert abs(sum(r.weight for r in design.reasons) - design.score) < 1e-9  # reasons still add up to the score


def test_taste_counts_every_rating() -> None:
    taste = Taste([(ITEMS[0], 1), (ITEMS[2], -1)], PaperVectors(ITEMS))
    assert taste.count == 2 and taste.of(ITEMS[1]) > taste.of(ITEMS[3])


def test_ratings_file_contract(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a:1", "rating": 1}\n\n{"id": "a:2", "rating": -1}\n{"id": "a:1", "rating": -1}\n')
    assert load_ratings(path) == [Rating("a:1", -1), Rating("a:2", -1)]  # a changed rating replaces the old
    path.write_text('{"id": "a:1", "rating": 2}\n')
    with pytest.raises(ConfigError, match=r"r.jsonl:1: rating must be 1 \(👍\) or -1 \(👎\)"):
        load_ratings(path)
    path.write_text('{"id": "a:1", "rating": 1}\nnot json\n')
    with pytest.raises(ConfigError, match=r"r.jsonl:2: expected"):
        load_ratings(path)


def test_rank_with_ratings_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.rl]\nkeywords = ["reinforcement learning"]\nexclude = ["robot"]\n')
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(item.to_json()) + "\n" for item in ITEMS))
    empty, rated = tmp_path / "empty.jsonl", tmp_path / "rated.jsonl"
    empty.write_text("")
    rated.write_text('{"id": "a:1", "rating": 1}\n{"id": "a:3", "rating": -1}\n')
    base = ["rank", "--config", str(config), "--profile", "rl", "--items", str(items), "--json"]
    alone = digestbot(*base)
    assert alone.returncode == 0, alone.stderr
    assert digestbot(*base, "--ratings", str(empty)).stdout == alone.stdout  # an empty file changes nothing
    moved = digestbot(*base, "--ratings", str(rated))
    order = [json.loads(line)["id"] for line in moved.stdout.splitlines()]
    assert order.index("a:2") < order.index("a:4") and "a:5" not in order
    kinds = {r["kind"] for line in moved.stdout.splitlines() for r in json.loads(line)["reasons"]}
    assert "feedback" in kinds


def test_with_the_semantic_extra_a_taste_learns_in_meaning(model: object) -> None:
    """With meaning in the score, a taste is Rocchio over the papers' embeddings: a paper close in meaning to a
    liked one moves up though it shares none of its rarer words; the reasons name the liked paper all the same."""
    profiles = {"rl": {"keywords": ["reinforcement learning"], "description": "reinforcement learning"}}
    matcher = compile_profiles(parse_config({"profiles": profiles}).profiles, corpus=ITEMS, semantic=True)
    assert matcher.semantic and matcher.embed(ITEMS[:1]) is not None
    taste = taste_of([Rating("a:1", 1), Rating("a:3", -1)], {i.id: i for i in ITEMS}, ITEMS, matcher.embed)
    assert taste is not None and taste.space == "meaning"
    before = {s.item.id: s.score for s in matcher.rank(ITEMS, "rl", with_below_min=True)}
    ranked = with_feedback(matcher.rank(ITEMS, "rl", with_below_min=True), taste, min_score=1.0)
    shift = {s.item.id: s.score - before[s.item.id] for s in ranked}
    assert shift["a:2"] > 0 > shift["a:4"]  # protein design (like a:1) up, chip floorplans (like a:3) down
    moved = {s.item.id: [r.term for r in s.reasons if r.kind == "feedback"] for s in ranked}
    assert any("Reinforcement learning for protein folding" in term for term in moved["a:2"]), moved
    assert taste.leanings()[0]  # what `digestbot feedback` shows is still in words
