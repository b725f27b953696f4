"""`check_profile`: terms that are legal but surely unintended, found with the same rules that match them.

`digestbot check-config` prints these as warnings (the bot still runs); each names the key, like
`profiles.rlhf.require[0]: ...`, and says why the term cannot do what it seems to.
"""

from __future__ import annotations

from bot.config import ProfileConfig
from bot.scoring.compile import case_rule
from bot.scoring.text import ACRONYM_PREFIX, author_key, term_variants

__all__ = ["check_profile"]

_Exclude = tuple[tuple[str, ...], str]  # an exclude term's token keys, and the term as the user wrote it


def check_profile(name: str, profile: ProfileConfig) -> list[str]:
    """Empty or never-matching terms, duplicates, terms vetoed by an exclude term, odd authors and case rules."""
    prefix = f"profiles.{name}"
    warnings: list[str] = []
    excludes: list[_Exclude] = []
    for j, text in enumerate(profile.exclude):
        variants = term_variants(text, case_rule(profile, text))
        if not variants:
            what = "empty exclude term" if not text.strip() else f"{text!r} has no letters or digits"
            warnings.append(f"{prefix}.exclude[{j}]: {what}, so it never matches")
        excludes.extend((variant, text.strip()) for variant in variants)
    warnings += _check_keywords(prefix, profile, excludes)
    warnings += _check_require(prefix, profile, excludes)
    for i, written in enumerate(profile.authors):
        if author_key(written) is None:
            what = "empty author name" if not written.strip() else f"{written!r} has no letters"
            warnings.append(f"{prefix}.authors[{i}]: {what}, so it never matches")
    warnings += _check_case_sensitive(prefix, profile)
    return warnings


def _check_keywords(prefix: str, profile: ProfileConfig, excludes: list[_Exclude]) -> list[str]:
    warnings: list[str] = []
    seen: dict[tuple[str, ...], tuple[str, str]] = {}
    for where, text, _ in profile.weighted_keywords:
        key = f"{prefix}.{where}"
        variants = term_variants(text, case_rule(profile, text))
        if (problem := _term_problem(key, text, variants, excludes, "keyword", "matches")) is not None:
            warnings.append(problem)
        elif variants[0] in seen:
            first_where, first_text = seen[variants[0]]
            warnings.append(f"{key}: {text!r} is the same as {first_where} ({first_text!r}) "
                            f"after normalisation; it adds nothing")
        if variants:
            seen.setdefault(variants[0], (where, text))
    return warnings


def _term_problem(key: str, text: str, variants: tuple[tuple[str, ...], ...], excludes: list[_Exclude],
                  kind: str, lets: str) -> str | None:
    """What makes a keyword or require term useless: empty, nothing left to match, or vetoed by an exclude term."""
    if not text.strip():
        return f"{key}: empty {kind} never matches"
    if not variants:
        return f"{key}: {text!r} has no letters or digits after removing markup, so it never matches"
    if (vetoing := _vetoed_by(variants[0], excludes)) is not None:
        return f"{key}: {text!r} contains the exclude term {vetoing!r}, so every paper it {lets} is excluded"
    return None


def _check_require(prefix: str, profile: ProfileConfig, excludes: list[_Exclude]) -> list[str]:
    warnings: list[str] = []
    for i, text in enumerate(profile.require):
        variants = term_variants(text, case_rule(profile, text))
        if (problem := _term_problem(f"{prefix}.require[{i}]", text, variants, excludes, "require term",
                                     "lets through")) is not None:
            warnings.append(problem)
    if profile.require and not any(term_variants(t, case_rule(profile, t)) for t in profile.require):
        warnings.append(f"{prefix}.require: no term can ever match, so only followed authors can score")
    return warnings


def _check_case_sensitive(prefix: str, profile: ProfileConfig) -> list[str]:
    if not isinstance(profile.case_sensitive, list):
        return []
    terms = {t.strip() for t in (*profile.exclude, *profile.require)}
    terms.update(text.strip() for _, text, _ in profile.weighted_keywords)
    warnings: list[str] = []
    for i, text in enumerate(profile.case_sensitive):
        key = f"{prefix}.case_sensitive[{i}]"
        if text not in terms:
            warnings.append(f"{key}: {text!r} is not one of this profile's keywords, exclude or require terms, "
                            f"so it changes nothing")
        elif text == text.lower():
            warnings.append(f"{key}: {text!r} has no capital letters; lower-case words match any case anyway")
    return warnings


def _vetoed_by(keys: tuple[str, ...], excludes: list[_Exclude]) -> str | None:
    """The exclude term (as the user wrote it, not its stems) found inside these keys, if any."""
    return next((text for variant, text in excludes if _contains(keys, variant)), None)


def _contains(keys: tuple[str, ...], part: tuple[str, ...]) -> bool:
    """Whether `part` occurs in `keys`, ignoring case: an exclude term vetoes an acronym keyword in any case."""
    keys = tuple(k.lstrip(ACRONYM_PREFIX).casefold() for k in keys)
    part = tuple(p.lstrip(ACRONYM_PREFIX).casefold() for p in part)
    return any(keys[i:i + len(part)] == part for i in range(len(keys) - len(part) + 1))
