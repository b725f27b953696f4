"""bot.scoring: matching rules, the score's shape, reasons, ranking, item loading and profile checks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bot.config import ProfileConfig
from bot.errors import ParseError
from bot.models import Item, Reason
from bot.scoring import check_profile, compile_profiles, load_items_jsonl


def profile(*keywords: str, exclude: tuple[str, ...] = (), description: str | None = None,
            min_score: float = 1.0) -> ProfileConfig:
    return ProfileConfig(keywords=list(keywords), exclude=list(exclude), description=description, min_score=min_score)


def item(title: str = "", abstract: str = "", id: str = "x") -> Item:
    return Item(id=id, title=title, url=f"https://example.org/{id}", abstract=abstract)


def matches(keyword: str, text: str) -> bool:
    return "p" in compile_profiles({"p": profile(keyword)}).score(item(abstract=text))


MATCH_CASES = [
    # whole words only
    ("RL", "RL for language models", True),
    ("RL", "a world model", False),
    ("CTR", "CTR prediction", True),
    ("CTR", "CTRL is a language model", False),
    ("ai", "fair ranking", False),
    # short ALL-CAPS terms are acronyms: case-sensitive; other terms are not
    ("CLIP", "we fine-tune CLIP on", True),
    ("CLIP", "several CLIPs were trained", True),
    ("CLIP", "we clip the gradients", False),
    ("clip", "we fine-tune CLIP on", True),
    ("clip", "we clip the gradients", True),
    ("DPO", "dpo is lowercase here", False),
    ("Reward Model", "a reward model is", True),
    # light stemming
    ("jailbreak", "new jailbreaks appear", True),
    ("jailbreak", "jailbreaking LLMs", True),
    ("recommendation", "sequential recommendations", True),
    ("recommendations", "a recommendation model", True),
    ("reward model", "reward modeling at scale", True),
    ("reward model", "reward modelling at scale", True),
    ("user behavior", "user behaviours", True),
    ("semantic IDs", "one semantic ID per item", True),
    # hyphens and spaces
    ("vision-language", "vision language models", True),
    ("vision-language", "a vision-language model", True),
    ("vision language", "a Vision\u2013Language model", True),
    ("click-through", "clickthrough rate", True),
    ("click-through", "click through rate", True),
    # accents and compatibility forms
    ("schrodinger", "the Schr\u00f6dinger bridge", True),
    ("caf\u00e9", "a cafe dataset", True),
    ("fine-tuning", "\ufb01ne-tuning", True),
    # markup stripped before matching
    ("DPO", "trained with <b>DPO</b>", True),
    ("reward model", r"a \textbf{reward} model", True),
    ("reward model", "a reward<br/>model", True),
    ("DPO", "PPO &amp; DPO", True),
    ("RLHF", r"using $\mathrm{RLHF}$ only in math", False),
    ("DPO", r"$\beta$-DPO works", True),
    ("smith", r"as shown \cite{smith2020}", False),
    ("bold", "<span class=bold>text</span>", False),
    # phrases match as contiguous token sequences only
    ("reward model", "the model of the reward", False),
    ("preference optimization", "direct preference optimization", True),
    ("reward model", "we learn a reward. Model size matters", False),
    ("reward model", "a reward, model and policy", False),
    ("reward model", "(reward model)", True),
    ("reward model 2.0", "reward model 2.0 is out", True),
]


@pytest.mark.parametrize(("keyword", "text", "expected"), MATCH_CASES)
def test_matching_rules(keyword: str, text: str, expected: bool) -> None:
    assert matches(keyword, text) is expected


@pytest.mark.parametrize(("keyword", "text"), [("CLIP", "clip"), ("RL", "world"), ("jailbreak", "jail")])
def test_matching_also_in_title(keyword: str, text: str) -> None:
    matcher = compile_profiles({"p": profile(keyword)})
    assert matcher.score(item(title=f"{keyword} study")) != {}
    assert matcher.score(item(title=f"a {text} study")) == {}


def test_title_counts_more_than_abstract() -> None:
    matcher = compile_profiles({"p": profile("DPO")})
    in_title = matcher.score(item(title="DPO at scale"))["p"].score
    in_abstract = matcher.score(item(abstract="DPO at scale"))["p"].score
    assert in_title == pytest.approx(2 * in_abstract)
    assert in_abstract == pytest.approx(1.0)


def test_phrase_weighs_more_than_word() -> None:
    matcher = compile_profiles({"p": profile("reward model", "reward")})
    reasons = {r.term: r.weight for r in matcher.score(item(abstract="a reward model"))["p"].reasons}
    assert reasons["reward model"] > reasons["reward"]


@pytest.mark.parametrize(("count", "lower", "upper"), [(1, 0.99, 1.01), (2, 1.3, 1.4), (3, 1.5, 1.7), (20, 2.0, 2.2)])
def test_repeats_saturate(count: int, lower: float, upper: float) -> None:
    matcher = compile_profiles({"p": profile("DPO")})
    score = matcher.score(item(abstract=" ".join(["DPO works."] * count)))["p"].score
    assert lower <= score <= upper


def test_distinct_keywords_beat_one_repeated() -> None:
    matcher = compile_profiles({"p": profile("DPO", "PPO", "GRPO")})
    varied = matcher.score(item(abstract="DPO PPO GRPO"))["p"].score
    repeated = matcher.score(item(abstract="DPO DPO DPO"))["p"].score
    assert varied > repeated


@pytest.mark.parametrize(("exclude", "text", "vetoed"), [
    ("survey", "a survey of DPO", True),
    ("survey", "Surveys of DPO", True),
    ("image generation", "DPO for image generation", True),
    ("image generation", "DPO for images", False),
    ("GAN", "DPO organ", False),
])
def test_exclude_vetoes(exclude: str, text: str, vetoed: bool) -> None:
    matcher = compile_profiles({"p": profile("DPO", exclude=(exclude,))})
    assert ("p" not in matcher.score(item(abstract=text))) is vetoed


def test_exclude_in_title_vetoes_abstract_match_and_only_its_profile() -> None:
    matcher = compile_profiles({"a": profile("DPO", exclude=("survey",)), "b": profile("DPO")})
    scored = matcher.score(item(title="A survey", abstract="DPO"))
    assert set(scored) == {"b"}


def test_reasons_and_explain() -> None:
    matcher = compile_profiles({"rlhf": profile("DPO", "reward model", "PPO")})
    scored = matcher.score(item(title="DPO without a critic", abstract="We train a reward model."))
    assert scored["rlhf"].reasons == (
        Reason("DPO", "title", 1, pytest.approx(2.0)),  # type: ignore[arg-type]
        Reason("reward model", "abstract", 1, pytest.approx(1.5)),  # type: ignore[arg-type]
    )
    assert scored["rlhf"].score == pytest.approx(sum(r.weight for r in scored["rlhf"].reasons))
    assert scored["rlhf"].explain() == "DPO in title, reward model in abstract"


def test_explain_joins_fields_of_one_term_and_counts_repeats() -> None:
    scored = compile_profiles({"p": profile("DPO")}).score(item(title="DPO", abstract="DPO, then DPO again."))["p"]
    assert scored.explain() == "DPO in title and abstract"
    assert [(r.field, r.count) for r in scored.reasons] == [("title", 1), ("abstract", 2)]
    assert scored.reasons[1].weight == pytest.approx(2 * 2.2 / 3.2)


def test_score_covers_every_matched_profile_regardless_of_min_score() -> None:
    matcher = compile_profiles({"a": profile("DPO", min_score=50), "b": profile("CTR"), "c": profile("DPO")})
    assert set(matcher.score(item(abstract="DPO"))) == {"a", "c"}
    assert matcher.profiles == ("a", "b", "c")
    assert matcher.min_score("a") == 50


def test_description_orders_but_cannot_pass_min_score_alone() -> None:
    described = profile("DPO", description="Preference tuning of language models with human feedback.")
    matcher = compile_profiles({"p": described}, semantic=False)  # words only; meaning: tests/test_semantic.py
    weak = matcher.score(item(abstract="language models"))["p"]
    strong = matcher.score(item(abstract="human feedback for language models, preference tuning"))["p"]
    assert 0 < weak.score < strong.score < 1.0
    assert {r.term for r in strong.reasons} >= {"human feedback", "language models"}
    assert matcher.rank([item(abstract="human feedback for language models, preference tuning")], "p") == []


ITEMS = [
    item(id="b", abstract="DPO"),
    item(id="a", abstract="DPO"),
    item(id="c", title="DPO and PPO", abstract="DPO"),
    item(id="d", abstract="nothing relevant"),
    item(id="e", title="PPO"),
]


def test_rank_orders_best_first_ties_by_id_and_applies_top() -> None:
    matcher = compile_profiles({"p": profile("DPO", "PPO")})
    assert [s.item.id for s in matcher.rank(ITEMS, "p")] == ["c", "e", "a", "b"]
    assert [s.item.id for s in matcher.rank(ITEMS, "p", top=2)] == ["c", "e"]


def test_rank_min_score_and_with_below_min() -> None:
    matcher = compile_profiles({"p": profile("DPO", "PPO", min_score=1.5)})
    assert [s.item.id for s in matcher.rank(ITEMS, "p")] == ["c", "e"]
    assert [s.item.id for s in matcher.rank(ITEMS, "p", with_below_min=True)] == ["c", "e", "a", "b"]


def test_rank_all_matches_rank_per_profile() -> None:
    matcher = compile_profiles({"dpo": profile("DPO"), "ppo": profile("PPO"), "none": profile("CTR")})
    everything = matcher.rank_all(ITEMS, top=3)
    assert set(everything) == {"dpo", "ppo", "none"}
    for name in matcher.profiles:
        assert everything[name] == matcher.rank(ITEMS, name, top=3)
    assert everything["none"] == []


def test_unknown_profile_is_named() -> None:
    with pytest.raises(KeyError, match="nope"):
        compile_profiles({"p": profile("DPO")}).rank(ITEMS, "nope")


def test_scores_are_deterministic() -> None:
    profiles = {"p": profile("DPO", "reward model", "PPO", description="preference training of language models")}
    items = [item(id=f"i{n}", title=f"DPO {n}", abstract="reward model " * (n % 4) + "PPO " * (n % 3))
             for n in range(30)]
    first = compile_profiles(profiles, corpus=items).rank(items, "p", with_below_min=True)
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    second = compile_profiles(profiles, corpus=shuffled).rank(shuffled, "p", with_below_min=True)
    assert [(s.item.id, s.score, s.reasons) for s in first] == [(s.item.id, s.score, s.reasons) for s in second]


def test_a_keyword_keeps_its_weight_however_common_rarity_weighs_description_words() -> None:
    corpus = [item(id=f"c{n}", abstract="alignment of models with rewards") for n in range(50)]
    corpus += [item(id="r", abstract="DPO")]
    described = profile("alignment", "DPO", description="Reward hacking in the alignment of models.")
    plain = compile_profiles({"p": described}, semantic=False)
    tuned = compile_profiles({"p": described}, corpus=corpus, semantic=False)
    rare, common = item(abstract="DPO"), item(abstract="alignment")
    assert tuned.score(rare)["p"].score == tuned.score(common)["p"].score == 1.0  # what the reader typed counts
    words = item(abstract="models hacking")
    plain_words = {r.term: r.weight for r in plain.score(words)["p"].reasons}
    tuned_words = {r.term: r.weight for r in tuned.score(words)["p"].reasons}
    assert plain_words["hacking"] == pytest.approx(plain_words["models"])
    assert tuned_words["hacking"] > 5 * tuned_words["models"]  # every corpus paper says "models"
    assert tuned.corpus_size == 51 and plain.corpus_size == 0


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_items_jsonl_reads_fields_and_ignores_others(tmp_path: Path) -> None:
    path = write_lines(tmp_path,
                       json.dumps({"id": "p1", "title": "T", "abstract": "A", "authors": ["Ada", "Bo"],
                                   "url": "https://x.org/1", "published": "2024-05-01T00:00:00+00:00", "seed": 3}),
                       "",
                       json.dumps({"id": 2, "title": "U"}))
    first, second = load_items_jsonl(path)
    assert (first.id, first.title, first.abstract, first.authors, first.url) == ("p1", "T", "A", ("Ada", "Bo"),
                                                                                  "https://x.org/1")
    assert first.published is not None and first.published.year == 2024
    assert (second.id, second.abstract, second.url, second.published) == ("2", "", "", None)


@pytest.mark.parametrize(("bad_line", "message"), [
    ("{not json", r"items\.jsonl:2: invalid JSON"),
    ('["a list"]', r"items\.jsonl:2: expected a JSON object"),
    ('{"title": "no id"}', r"items\.jsonl:2: missing key 'id'"),
    ('{"id": "x", "authors": "Ada"}', r"items\.jsonl:2: 'authors' must be a list"),
    ('{"id": "x", "published": "last week"}', r"items\.jsonl:2: .*isoformat"),
])
def test_load_items_jsonl_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = write_lines(tmp_path, json.dumps({"id": "ok", "title": "fine"}), bad_line)
    with pytest.raises(ParseError, match=message):
        load_items_jsonl(path)


def test_load_items_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="cannot read items file"):
        load_items_jsonl(tmp_path / "absent.jsonl")


@pytest.mark.parametrize(("keywords", "exclude", "expected"), [
    (["DPO", " "], [], ["profiles.rlhf.keywords[1]: empty keyword never matches"]),
    (["DPO", "$x$"], [], ["profiles.rlhf.keywords[1]: '$x$' has no letters or digits"]),
    (["DPO", "Survey"], ["surveys"], ["profiles.rlhf.keywords[1]: 'Survey' contains the exclude term 'surveys'"]),
    (["reward model"], ["model"], ["profiles.rlhf.keywords[0]: 'reward model' contains the exclude term 'model'"]),
    (["learning from preferences"], ["preferences"],  # the user's term, not its stem 'preferenc'
     ["profiles.rlhf.keywords[0]: 'learning from preferences' contains the exclude term 'preferences',"]),
    (["recommendation", "Recommendations"], [], ["profiles.rlhf.keywords[1]: 'Recommendations' is the same as "
                                                 "keywords[0]"]),
    (["DPO"], ["", "<b></b>"], ["profiles.rlhf.exclude[0]: empty exclude term",
                                "profiles.rlhf.exclude[1]: '<b></b>' has no letters or digits"]),
    (["DPO", "PPO"], ["ppo"], ["profiles.rlhf.keywords[1]: 'PPO' contains the exclude term 'ppo'"]),
    (["DPO", "reward model"], ["survey"], []),
])
def test_check_profile(keywords: list[str], exclude: list[str], expected: list[str]) -> None:
    warnings = check_profile("rlhf", profile(*keywords, exclude=tuple(exclude)))
    assert len(warnings) == len(expected), warnings
    for warning, start in zip(warnings, expected, strict=True):
        assert warning.startswith(start)


def test_pair_buffer_keeps_every_pair_across_growth_and_meaning_that_starts_late() -> None:
    """The buffer planning gathers pairs in: what it gives back is exactly what was added, in order, whether the
    meaning column was written from the start, only later, or never (then it is all zeros)."""
    import numpy as np

    from bot.scoring.batch import PairBuffer

    rng = np.random.default_rng(7)
    for meaning_from in (0, 5, None):
        buffer, added = PairBuffer(), []
        for chunk in range(12):
            n = int(rng.integers(0, 30_000))  # crosses the first capacity (65,536) and doubles more than once
            meaning = (rng.integers(0, 3, n) * 1.0 if meaning_from is not None and chunk >= meaning_from
                       else np.zeros(n))
            columns = (rng.integers(0, 1 << 20, n), rng.integers(0, 10_000, n), rng.random(n) * 1e7, meaning)
            buffer.add(*columns)
            added.append(columns)
        taken = buffer.take()
        assert len(buffer) == 0
        for i in range(4):
            assert np.array_equal(taken[i], np.concatenate([columns[i] for columns in added]))
