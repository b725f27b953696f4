"""Text → match keys, shared by profile terms and item text so both sides normalise the same way.

A token yields one or two keys:

- a *word key*: the NFKD-folded, lower-cased token after a light suffix stripper (`jailbreaking` → `jailbreak`,
  `recommendations` → `recommend`), so ordinary words match case-insensitively across inflections;
- a *case key* (`^DPO`, `^Mamba`) when the token has a capital letter, case kept and an optional plural `s`
  dropped (`LLMs` → `^LLM`). Profile terms written in ALL CAPS of at most five characters (acronyms) use only
  that key, so `CLIP` matches "CLIP" and "CLIPs" but never "clip", while `clip` matches both. A profile's
  `case_sensitive` changes the rule per term (`Case.EXACT`: every word with a capital uses its case key;
  `Case.IGNORE`: none does).

Punctuation separates tokens, so `vision-language`, "vision language" and "vision–language" are one token
sequence. LaTeX math (`$...$`), LaTeX commands and HTML tags are removed before tokenising; the argument of a
formatting command (`\\textbf{DPO}`) is kept, that of a reference (`\\cite{...}`) is not.

Author names (`author_key`) are folded the same way and reduced to (first name, surname): "Last, First" is
reordered, middle names and initials are dropped, and a first name matches its initial ("Y. LeCun" is "Yann
LeCun"), so following a person survives the ways sources print names.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from enum import Enum
from functools import lru_cache

ACRONYM_MAX = 5
ACRONYM_PREFIX = "^"


class Case(Enum):
    """How a profile term treats letter case: the acronym rule (default), exact for capitals, or ignored."""

    ACRONYMS = "acronyms"
    EXACT = "exact"
    IGNORE = "ignore"


_HTML_TAG = re.compile(r"<[A-Za-z/!][^<>]{0,500}>")
_LATEX_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]{0,500}\$", re.DOTALL)
_LATEX_REF = re.compile(r"\\(?:cite[a-z]*|ref|eqref|label|url|href|footnote)\*?\{[^{}]*\}")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+\*?")
_TOKEN = re.compile(r"[^\W_]+")
# A token, or (empty group) a clause break: `.,;:!?` before a space or the end, or brackets and `;!?` anywhere.
_TOKEN_OR_BREAK = re.compile(r"([^\W_]+)|[.,;:!?()\[\]]+(?=\s|$)|[;!?()\[\]]")
_NAME_WORD = re.compile(r"[^\W\d_]+")
_NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
_MIN_STEM = 4
_CACHE_MAX = 200_000
_token_keys: dict[str, tuple[str, ...]] = {}
_author_keys: dict[str, tuple[str, str] | None] = {}
# Tried in order, at most two strips; longer variants first so "ations" is not stripped as "s".
_SUFFIXES = ("ations", "ation", "ators", "ator", "ating", "ated", "ates", "ate", "ments", "ment", "ness", "ings",
             "ing", "ers", "er", "ed", "e")
_NO_PLURAL = ("ss", "us", "is", "as")
# Words that carry no topic: dropped when a profile description is turned into terms.
_STOPWORD_TEXT = """
a about above across after again against all also am among an and any are as at be been before being between
both but by can could did do does doing done each either etc even ever every few for from further had has have
having here how however i if in into is it its itself just less like many may might more most much must my
neither no nor not now of off often on once only or other our out over own per rather same several should since
so some such than that the their them then there these they this those through thus to too under until up upon
us use used uses using very via was we were what when where whether which while who whom whose why will with
within without would yet you your based new novel approach approaches method methods paper papers work works
including include includes e g its variant variants
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def clean_text(text: str) -> str:
    """Strip markup and fold accents/compatibility forms, keeping letter case (acronyms need it)."""
    if "<" in text:
        text = _HTML_TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    if "$" in text:
        text = _LATEX_MATH.sub(" ", text)
    if "\\" in text:
        text = _LATEX_REF.sub(" ", text)
        text = _LATEX_CMD.sub(" ", text).replace("{", "").replace("}", "")
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def tokens(text: str) -> list[str]:
    """Surface tokens (letters and digits runs) of cleaned text, case kept."""
    return _TOKEN.findall(clean_text(text))


def stem(word: str) -> str:
    """A deliberately small suffix stripper: plurals, up to two common suffixes, then a final double consonant.

    Undoubling always (not only after a strip) keeps "modelling", "modeling" and "model" together as well as
    "skill" and "skilled".

    Both profile terms and text go through it, so it only has to be consistent, not linguistically right.
    """
    if len(word) < 3 or not word.isalpha():
        return word
    if word.endswith(("ies", "ied")) and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(_NO_PLURAL):
        word = word[:-1]
    if len(word) <= 3:
        return word
    word = word.replace("isation", "ization").replace("our", "or") if len(word) > 6 else word
    for _ in range(2):
        for suffix in _SUFFIXES:
            base = word[: -len(suffix)]
            if word.endswith(suffix) and len(base) >= _MIN_STEM and any(v in base for v in "aeiouy"):
                word = base
                break
        else:
            break
    if len(word) > _MIN_STEM and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def case_key(token: str) -> str | None:
    """`DPO` → `^DPO`, `LLMs` → `^LLM`, `Mamba` → `^Mamba`; None for tokens without a capital letter."""
    if token == token.lower():
        return None
    if len(token) > 2 and token.endswith("s") and not token.endswith("ss"):
        token = token[:-1]
    return ACRONYM_PREFIX + token


def token_keys(token: str) -> tuple[str, ...]:
    """The keys one text token can match: its word key, and its case key when it has a capital (memoised)."""
    keys = _token_keys.get(token)
    if keys is None:
        word = stem(token.casefold())
        upper = case_key(token)
        keys = (word, upper) if upper else (word,)
        if len(_token_keys) >= _CACHE_MAX:
            _token_keys.clear()
        _token_keys[token] = keys
    return keys


def text_keys(text: str) -> list[tuple[str, ...]]:
    """Per token of `text`, the keys it can match: its word key and, when it has capitals, its case key.

    An empty tuple marks a clause break (`.,;:!?` or brackets) so a phrase never matches across one.
    """
    known = _token_keys.get  # the memo first: most tokens were seen before
    return [(known(token) or token_keys(token)) if token else () for token in _TOKEN_OR_BREAK.findall(clean_text(text))]


def is_acronym_term(token: str) -> bool:
    return token.isupper() and len(token) <= ACRONYM_MAX


def _term_key(token: str, case: Case) -> str:
    if case is Case.EXACT or (case is Case.ACRONYMS and is_acronym_term(token)):
        upper = case_key(token)
        if upper is not None:
            return upper
    return stem(token.casefold())


@lru_cache(maxsize=65536)
def term_variants(term: str, case: Case = Case.ACRONYMS) -> tuple[tuple[str, ...], ...]:
    """Key sequences a profile term matches: its tokens, plus the closed-up form of a hyphenated pair.

    `click-through` also matches "clickthrough"; an empty tuple means the term can never match. Memoised:
    thousands of profiles share their terms.
    """
    surface = tokens(term)
    keys = tuple(_term_key(t, case) for t in surface)
    if not keys:
        return ()
    if len(surface) == 2 and "-" in term and not any(k.startswith(ACRONYM_PREFIX) for k in keys):
        return keys, (stem("".join(surface).casefold()),)
    return (keys,)


def author_key(name: str) -> tuple[str, str] | None:
    """(first name or initial, surname), folded: "LeCun, Yann", "Y. LeCun" and "yann lecun" → ("yann"/"y", "lecun").

    None when the name has no letters. A one-word name has an empty first name (it matches any first name).
    """
    if name in _author_keys:
        return _author_keys[name]
    text = clean_text(name)
    if "," in text:
        last, _, first = text.partition(",")
        text = f"{first} {last}"
    words = [w for w in (w.casefold() for w in _NAME_WORD.findall(text)) if w not in _NAME_SUFFIXES]
    key = (words[0] if len(words) > 1 else "", words[-1]) if words else None
    if len(_author_keys) >= _CACHE_MAX:
        _author_keys.clear()
    _author_keys[name] = key
    return key


def same_first_name(a: str, b: str) -> bool:
    """Equal, or one is an initial of the other; an unknown (empty) first name matches any."""
    if not a or not b:
        return True
    if len(a) == 1 or len(b) == 1:
        return a[0] == b[0]
    return a == b


def description_terms(description: str) -> Iterator[str]:
    """Candidate low-weight terms from free text: content words and adjacent content-word pairs.

    The description is cut at punctuation and stop words; each run of content words yields its words and its
    two-word phrases ("reward models", "language models"), in order of appearance.
    """
    for chunk in re.split(r"[,;:.()/\[\]!?]+", clean_text(description)):
        run: list[str] = []
        for token in [*_TOKEN.findall(chunk), ""]:
            if token and token.casefold() not in STOPWORDS and not token.isdigit():
                run.append(token)
                continue
            yield from run
            yield from (f"{a} {b}" for a, b in zip(run, run[1:], strict=False))
            run = []
