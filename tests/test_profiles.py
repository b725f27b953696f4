"""The profile language on top of keywords: weights, require, authors, fields, case_sensitive, max_items; config
errors and check-config warnings for it; the fast many-profile path agreeing with the exact one; and a profile
edit changing what the preview of stored items shows."""

from __future__ import annotations

import math
import random
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import ProfileConfig, parse_config
from bot.errors import ConfigError
from bot.models import Item, Reason
from bot.scoring import batch as scoring_batch
from bot.scoring import check_profile, compile_profiles
from bot.scoring import engine as scoring
from bot.store import Store


def profile(**fields: Any) -> ProfileConfig:
    fields.setdefault("keywords", ["DPO"])
    return ProfileConfig(**fields)


def item(title: str = "", abstract: str = "", id: str = "x", authors: tuple[str, ...] = ()) -> Item:
    return Item(id=id, title=title, url=f"https://example.org/{id}", abstract=abstract, authors=authors)


def score(p: ProfileConfig, it: Item) -> float | None:
    scored = compile_profiles({"p": p}).score(it).get("p")
    return None if scored is None else scored.score


def toml_profile(text: str) -> ProfileConfig:
    return parse_config(tomllib.loads("[profiles.p]\n" + text)).profiles["p"]


# --- keywords with weights -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ('keywords = ["DPO", "PPO"]', [("keywords[0]", "DPO", 1.0), ("keywords[1]", "PPO", 1.0)]),
    ('keywords = { "direct preference optimization" = 3, DPO = 2 }',
     [("keywords['direct preference optimization']", "direct preference optimization", 3.0),
      ("keywords['DPO']", "DPO", 2.0)]),
    ('keywords = ["RLHF", { DPO = 2.5 }]', [("keywords[0]", "RLHF", 1.0), ("keywords[1]", "DPO", 2.5)]),
])
def test_keyword_forms_flatten_in_order(text: str, expected: list[tuple[str, str, float]]) -> None:
    assert list(toml_profile(text).weighted_keywords) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("keywords = { DPO = 0 }", "profiles.p.keywords: weight of 'DPO' must be a number above 0"),
    ('keywords = { DPO = "high" }', "profiles.p.keywords: weight of 'DPO' must be a number"),
    ('keywords = ["x", { a = 1, b = 2 }]', "profiles.p.keywords: entry [1] has 2 terms"),
    ('keywords = ["x", 3]', "profiles.p.keywords: entry [1] is 3"),
    ("keywords = 3", "profiles.p.keywords: expected a list of terms, or a table"),
    ("keywords = []", "profiles.p: keywords: expected at least one term"),
    ('keywords = ["x"]\nfields = { titel = 2 }', "profiles.p.fields.titel: unknown key"),
    ('keywords = ["x"]\nmax_items = 0', "profiles.p.max_items: Input should be greater than or equal to 1"),
])
def test_profile_config_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        toml_profile(text)
    assert any(problem.startswith(message) for problem in caught.value.problems), caught.value.problems


def test_weights_multiply_a_terms_contribution() -> None:
    weighted = profile(keywords={"DPO": 3.0, "PPO": 1.0})
    scored = compile_profiles({"p": weighted}).score(item(abstract="DPO and PPO"))["p"]
    assert {r.term: r.weight for r in scored.reasons} == {"DPO": pytest.approx(3.0), "PPO": pytest.approx(1.0)}
    assert score(profile(keywords=["x", {"DPO": 2.0}]), item(title="DPO")) == pytest.approx(4.0)


# --- require -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("title", "abstract", "scores"), [
    ("DPO for LLMs", "", True),
    ("DPO", "we align a large language model", True),  # "LLM" written out is another term: not required here
    ("DPO", "for robots", False),
    ("", "DPO for LLMs", True),
])
def test_require_gates_the_profile(title: str, abstract: str, scores: bool) -> None:
    gated = profile(keywords=["DPO"], require=["LLM", "language model"])
    assert (score(gated, item(title=title, abstract=abstract)) is not None) is scores


def test_require_terms_add_nothing_themselves() -> None:
    assert score(profile(require=["LLM"]), item(abstract="DPO for LLMs")) == pytest.approx(1.0)
    assert score(profile(require=["LLM"]), item(abstract="LLMs only")) is None


# --- authors -----------------------------------------------------------------------------------------------

AUTHOR_CASES = [
    ("Yann LeCun", "Yann LeCun", True),
    ("Yann LeCun", "yann lecun", True),
    ("Yann LeCun", "Y. LeCun", True),
    ("Y. LeCun", "Yann LeCun", True),
    ("Yann LeCun", "LeCun, Yann", True),
    ("LeCun, Y.", "Yann A. LeCun", True),
    ("Yann LeCun", "Yann André LeCun", True),  # middle names ignored
    ("José García", "Jose Garcia", True),  # accents folded
    ("Jose Garcia", "José García", True),
    ("LeCun", "Yann LeCun", True),  # a surname alone follows every LeCun
    ("Yann LeCun", "Yves LeCun", False),
    ("Yann LeCun", "Yann Bengio", False),
    ("Yann LeCun", "Y. Le Cun", False),  # a surname split in two is another surname
    ("Ana Müller", "Ana Muller-Schmidt", False),  # the last word is the surname
]


@pytest.mark.parametrize(("followed", "written", "matches"), AUTHOR_CASES)
def test_author_matching(followed: str, written: str, matches: bool) -> None:
    follows = profile(keywords=["unrelated"], authors=[followed])
    assert (score(follows, item(abstract="nothing", authors=("Someone Else", written))) is not None) is matches


@pytest.mark.parametrize("min_score", [0.0, 1.0, 3.5])
def test_author_match_reaches_min_score_and_explains_itself(min_score: float) -> None:
    follows = profile(keywords=["unrelated"], authors=["Yann LeCun"], min_score=min_score)
    matcher = compile_profiles({"p": follows})
    ranked = matcher.rank([item(abstract="robots", authors=("Y. LeCun",))], "p")
    assert len(ranked) == 1 and ranked[0].score >= min_score
    assert ranked[0].reasons == (Reason("Yann LeCun", "authors", 1, max(min_score, 1.0), kind="author"),)


def test_author_match_ignores_require_but_not_exclude() -> None:
    follows = profile(keywords=["DPO"], require=["LLM"], exclude=["survey"], authors=["Yann LeCun"])
    assert score(follows, item(abstract="robots", authors=("Yann LeCun",))) is not None
    assert score(follows, item(abstract="a survey of robots", authors=("Yann LeCun",))) is None


def test_profile_of_authors_only_is_valid() -> None:
    only = toml_profile('authors = ["Yann LeCun"]')
    assert only.weighted_keywords == ()
    assert score(only, item(abstract="DPO", authors=("LeCun, Yann",))) == pytest.approx(1.0)


def test_fields_authors_scales_an_author_match() -> None:
    follows = profile(authors=["Yann LeCun"], fields={"authors": 2.5})
    assert score(follows, item(abstract="DPO", authors=("Yann LeCun",))) == pytest.approx(1.0 + 2.5)


# --- fields and case_sensitive -----------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "title", "abstract", "expected"), [
    ({}, "DPO", "", 2.0),
    ({"title": 3}, "DPO", "", 3.0),
    ({"abstract": 0.5}, "", "DPO", 0.5),
    ({"abstract": 0}, "", "DPO", None),
    ({"title": 1, "abstract": 1}, "DPO", "DPO", 2.0),
])
def test_field_weights(fields: dict[str, float], title: str, abstract: str, expected: float | None) -> None:
    got = score(profile(fields=fields, min_score=0), item(title=title, abstract=abstract))
    assert got == (None if expected is None else pytest.approx(expected))


CASE_CASES = [
    (None, "CLIP", "we clip gradients", False),  # the acronym rule
    (False, "CLIP", "we clip gradients", True),  # turned off for the profile
    (True, "Mamba", "the mamba snake", False),
    (True, "Mamba", "Mamba layers", True),
    (True, "Mamba", "two Mambas", True),
    (True, "Mamba", "MAMBA layers", False),
    (["Mamba"], "Mamba", "the mamba snake", False),
    (["Mamba"], "Mamba", "Mamba layers", True),
    (["Other"], "Mamba", "the mamba snake", True),  # only listed terms are exact
    (True, "state space", "State Space models", True),  # lower-case words still match any case
]


@pytest.mark.parametrize(("case_sensitive", "keyword", "text", "matches"), CASE_CASES)
def test_case_sensitive_override(case_sensitive: bool | list[str] | None, keyword: str, text: str,
                                 matches: bool) -> None:
    p = profile(keywords=[keyword], case_sensitive=case_sensitive)
    assert (score(p, item(abstract=text)) is not None) is matches


def test_case_sensitive_applies_to_exclude_too() -> None:
    p = profile(keywords=["fruit"], exclude=["Apple"], case_sensitive=["Apple"])
    assert score(p, item(abstract="apple fruit")) is not None
    assert score(p, item(abstract="Apple fruit")) is None


def test_max_items_is_exposed() -> None:
    matcher = compile_profiles({"a": profile(max_items=5), "b": profile()})
    assert (matcher.max_items("a"), matcher.max_items("b")) == (5, None)
    with pytest.raises(KeyError, match="nope"):
        matcher.max_items("nope")


# --- check-config warnings ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "expected"), [
    ({"require": [" "]}, ["profiles.p.require[0]: empty require term never matches",
                          "profiles.p.require: no term can ever match"]),
    ({"require": ["LLM", "$x$"]}, ["profiles.p.require[1]: '$x$' has no letters or digits"]),
    ({"require": ["survey papers"], "exclude": ["survey"]},
     ["profiles.p.require[0]: 'survey papers' contains the exclude term 'survey'"]),
    ({"authors": ["Yann LeCun", " ", "42"]}, ["profiles.p.authors[1]: empty author name",
                                              "profiles.p.authors[2]: '42' has no letters"]),
    ({"keywords": {"DPO": 2, "dpo": 1}, "case_sensitive": False},
     ["profiles.p.keywords['dpo']: 'dpo' is the same as keywords['DPO']"]),
    ({"case_sensitive": ["Mamba", "dpo"], "keywords": ["Mamba", "dpo"]},
     ["profiles.p.case_sensitive[1]: 'dpo' has no capital letters"]),
    ({"case_sensitive": ["Transformer"]}, ["profiles.p.case_sensitive[0]: 'Transformer' is not one of"]),
    ({"require": ["LLM"], "authors": ["Y. LeCun"], "keywords": {"DPO": 2}}, []),
])
def test_check_profile_new_keys(fields: dict[str, Any], expected: list[str]) -> None:
    warnings = check_profile("p", profile(**fields))
    assert len(warnings) == len(expected), warnings
    for warning, start in zip(warnings, expected, strict=True):
        assert warning.startswith(start), warning


# --- the fast path agrees with the exact one; determinism ---------------------------------------------------

WORDS = ["DPO", "PPO", "reward model", "language models", "survey", "LLM", "vision-language", "jailbreaks",
         "recommendation", "click-through", "Mamba", "clip", "CLIP", "alignment", "preference data"]


def random_profiles(rng: random.Random, n: int) -> dict[str, ProfileConfig]:
    profiles = {}
    for i in range(n):
        terms = rng.sample(WORDS, rng.randint(1, 4))
        profiles[f"p{i}"] = ProfileConfig(
            keywords=[{t: rng.choice([0.5, 1.0, 2.0])} if rng.random() < 0.3 else t for t in terms],
            exclude=rng.sample(WORDS, 1) if rng.random() < 0.2 else [],
            require=rng.sample(WORDS, 2) if rng.random() < 0.2 else [],
            authors=["Ada Lovelace"] if rng.random() < 0.2 else [],
            description="Preference tuning of language models for recommendation" if rng.random() < 0.3 else None,
            min_score=rng.choice([0.0, 0.5, 1.0, 2.0, 3.0]),
            fields={"title": rng.choice([1, 2, 3])},
            case_sensitive=rng.choice([None, True, False]))
    return profiles


def random_items(rng: random.Random, n: int) -> list[Item]:
    return [item(id=f"i{j:03d}", title=" ".join(rng.sample(WORDS, 2)), abstract=". ".join(rng.sample(WORDS, 5)),
                 authors=("A. Lovelace",) if rng.random() < 0.2 else ()) for j in range(n)]


def test_rank_all_agrees_with_exact_scoring_of_every_profile() -> None:
    rng = random.Random(11)
    profiles, items = random_profiles(rng, 60), random_items(rng, 80)
    matcher = compile_profiles(profiles, corpus=items)
    everything = matcher.rank_all(items)
    for name in profiles:
        expected = [s for s in (matcher.score(it).get(name) for it in items)
                    if s is not None and s.score >= matcher.min_score(name)]
        expected.sort(key=lambda s: (-s.score, s.item.id))
        assert everything[name] == expected == matcher.rank(items, name)


@pytest.mark.parametrize("seed", range(8))
def test_rank_all_top_n_is_the_head_of_rank_for_every_profile(seed: int) -> None:
    """The digest path (NumPy scores for every profile at once, reasons built for the kept items only) must keep
    exactly what ranking everything one profile at a time and cutting would: same items, order, scores and
    reasons, ties by id."""
    rng = random.Random(100 + seed)
    profiles, items = random_profiles(rng, 40), random_items(rng, 60)
    items += [Item(id=f"dup{j}", title=it.title, url="", abstract=it.abstract, authors=it.authors)
              for j, it in enumerate(rng.sample(items, 10))]  # identical texts: exact ties broken by id
    rng.shuffle(items)
    matcher = compile_profiles(profiles, corpus=items if seed % 2 else ())
    for top in (0, 1, 2, 3, 7, 25, 1000):
        kept = matcher.rank_all(items, top=top)
        assert list(kept) == list(profiles)
        for name in profiles:
            assert kept[name] == matcher.rank(items, name)[:top], (top, name)


@pytest.mark.parametrize("chunk_items", [1, 3, 7])
def test_rank_all_across_chunk_and_merge_boundaries(monkeypatch: pytest.MonkeyPatch, chunk_items: int) -> None:
    """Scores are made a few items at a time and the kept pairs merged every few pairs (tiny sizes here, so every
    boundary is crossed): the result must not depend on where the boundaries fall."""
    rng = random.Random(40 + chunk_items)
    profiles, items = random_profiles(rng, 30), random_items(rng, 50)
    items += [Item(id=f"dup{j}", title=it.title, url="", abstract=it.abstract, authors=it.authors)
              for j, it in enumerate(rng.sample(items, 8))]
    monkeypatch.setattr(scoring_batch, "CHUNK_CELLS", chunk_items * len(profiles))
    monkeypatch.setattr(scoring, "_MERGE_PAIRS", 5)
    matcher = compile_profiles(profiles, corpus=items)
    everything = matcher.rank_all(items)
    for top in (1, 4, 100):
        kept = matcher.rank_all(items, top=top)
        for name in profiles:
            assert kept[name] == everything[name][:top] == matcher.rank(items, name)[:top], (top, name)


def test_reasons_add_up_to_the_score_exactly() -> None:
    """Contributions are quantised before they are summed: the reasons a reader sees are the whole score."""
    rng = random.Random(8)
    profiles, items = random_profiles(rng, 40), random_items(rng, 40)
    ranked = compile_profiles(profiles, corpus=items).rank_all(items)
    checked = 0
    for scored in (s for out in ranked.values() for s in out):
        assert math.fsum(r.weight for r in scored.reasons) == scored.score
        checked += 1
    assert checked > 100


def test_rank_all_top_n_on_a_digest_sized_workload() -> None:
    rng = random.Random(3)
    profiles, items = random_profiles(rng, 150), random_items(rng, 300)
    matcher = compile_profiles(profiles)
    everything, kept = matcher.rank_all(items), matcher.rank_all(items, top=5)
    assert sum(map(len, everything.values())) > 5 * sum(map(len, kept.values())) > 0
    for name in profiles:
        assert kept[name] == everything[name][:5]


def test_rank_all_is_deterministic_across_runs_and_input_order() -> None:
    rng = random.Random(5)
    profiles, items = random_profiles(rng, 30), random_items(rng, 50)
    first = compile_profiles(profiles, corpus=items).rank_all(items)
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    second = compile_profiles(profiles, corpus=shuffled).rank_all(shuffled)
    assert list(first) == list(second)
    for name in first:
        assert [(s.item.id, s.score, s.reasons) for s in first[name]] == \
               [(s.item.id, s.score, s.reasons) for s in second[name]]


# --- a profile edit changes the preview of stored items -----------------------------------------------------

STORED = [
    item(id="a", title="DPO without a reward model", abstract="Direct preference optimization for LLMs."),
    item(id="b", title="A survey of DPO variants", abstract="We review preference optimization."),
    item(id="c", title="GRPO for math reasoning", abstract="Group relative policy optimization of LLMs."),
    item(id="d", title="Jailbreaking vision-language models", abstract="Attacks on VLMs."),
]


def preview(p: ProfileConfig, items: list[Item]) -> list[tuple[str, str]]:
    ranked = compile_profiles({"p": p}, corpus=items).rank(items, "p", with_below_min=True)
    return [(s.item.id, s.explain()) for s in ranked if s.score >= p.min_score]


def test_profile_edit_changes_the_preview(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    now = datetime(2026, 11, 20, tzinfo=UTC)
    try:
        store.save_items("hf", STORED, seen_at=now)
        items = store.items_first_seen_between(now - timedelta(days=1), now + timedelta(seconds=1))
    finally:
        store.close()
    before = preview(ProfileConfig(keywords=["DPO", "preference optimization"]), items)
    assert [i for i, _ in before] == ["a", "b"]
    added = preview(ProfileConfig(keywords=["DPO", "preference optimization", "GRPO"]), items)
    assert [i for i, _ in added] == ["a", "b", "c"]
    assert dict(added)["c"] == "GRPO in title"
    excluded = preview(ProfileConfig(keywords=["DPO", "preference optimization", "GRPO"], exclude=["survey"]), items)
    assert [i for i, _ in excluded] == ["a", "c"]
