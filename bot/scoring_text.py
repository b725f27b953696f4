"""Text → match keys, shared by profile terms and item text so both sides normalise the same way.

A token yields one or two keys:

- a *word key*: the NFKD-folded, lower-cased token after a light suffix stripper (`jailbreaking` → `jailbreak`,
  `recommendations` → `recommend`), so ordinary words match case-insensitively across inflections;
- an *acronym key* (`^DPO`) when the token is written in capitals (an optional plural `s` dropped: `LLMs` →
  `^LLM`). Profile terms written in ALL CAPS of at most five characters use only that key, so `CLIP` matches
  "CLIP" and "CLIPs" but never "clip", while `clip` matches both.

Punctuation separates tokens, so `vision-language`, "vision language" and "vision–language" are one token
sequence. LaTeX math (`$...$`), LaTeX commands and HTML tags are removed before tokenising; the argument of a
formatting command (`\\textbf{DPO}`) is kept, that of a reference (`\\cite{...}`) is not.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator

ACRONYM_MAX = 5
ACRONYM_PREFIX = "^"

_HTML_TAG = re.compile(r"<[A-Za-z/!][^<>]{0,500}>")
_LATEX_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]{0,500}\$", re.DOTALL)
_LATEX_REF = re.compile(r"\\(?:cite[a-z]*|ref|eqref|label|url|href|footnote)\*?\{[^{}]*\}")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+\*?")
_TOKEN = re.compile(r"[^\W_]+")
_CLAUSE_BREAK = re.compile(r"[.,;:!?()\[\]]+(?=\s|$)|[;!?()\[\]]")
_MIN_STEM = 4
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
    text = _HTML_TAG.sub(" ", text)
    text = html.unescape(text)
    text = _LATEX_MATH.sub(" ", text)
    text = _LATEX_REF.sub(" ", text)
    text = _LATEX_CMD.sub(" ", text).replace("{", "").replace("}", "")
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


def acronym_key(token: str) -> str | None:
    """`DPO` → `^DPO`, `LLMs` → `^LLM`; None for tokens not written in capitals."""
    if len(token) > 2 and token.endswith("s") and token[:-1].isupper():
        token = token[:-1]
    return ACRONYM_PREFIX + token if token.isupper() else None


def text_keys(text: str) -> list[tuple[str, ...]]:
    """Per token of `text`, the keys it can match: its word key and, when written in capitals, its acronym key.

    An empty tuple marks a clause break (`.,;:!?` or brackets) so a phrase never matches across one.
    """
    out: list[tuple[str, ...]] = []
    for clause in _CLAUSE_BREAK.split(clean_text(text)):
        for token in _TOKEN.findall(clause):
            word = stem(token.casefold())
            acro = acronym_key(token)
            out.append((word, acro) if acro else (word,))
        out.append(())
    return out[:-1]


def is_acronym_term(token: str) -> bool:
    return token.isupper() and len(token) <= ACRONYM_MAX


def term_variants(term: str) -> list[tuple[str, ...]]:
    """Key sequences a profile term matches: its tokens, plus the closed-up form of a hyphenated pair.

    `click-through` also matches "clickthrough"; an empty list means the term can never match.
    """
    surface = tokens(term)
    keys = tuple(ACRONYM_PREFIX + t if is_acronym_term(t) else stem(t.casefold()) for t in surface)
    if not keys:
        return []
    variants = [keys]
    if len(surface) == 2 and "-" in term and not any(is_acronym_term(t) for t in surface):
        variants.append((stem("".join(surface).casefold()),))
    return variants


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
