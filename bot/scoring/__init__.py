"""Scoring: keyword profiles (and, with the `semantic` extra, their descriptions' meaning) × items → ranked
`ScoredItem`s with reasons.

The modules follow the work: `text` (text → match keys), `compile` (profiles → one index), `scan` (an item →
class counts), `semantic` (optional embeddings), `keywords` and `engine` (the one score that planning, `preview`,
`rank`, alerts and the benchmarks run), `checks` (profile warnings for `check-config`), `items` (JSON-lines input).
"""

from bot.scoring.checks import check_profile
from bot.scoring.engine import Matcher, compile_profiles
from bot.scoring.items import load_items_jsonl

__all__ = ["Matcher", "check_profile", "compile_profiles", "load_items_jsonl"]
