"""Items for `digestbot rank` and the benches: JSON lines → `Item`s, with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

from bot.errors import ParseError
from bot.models import Item

__all__ = ["load_items_jsonl"]


def load_items_jsonl(path: Path) -> list[Item]:
    """Items from JSON lines (`id`, `title`, `abstract`, optional `authors`, `url`, `published`; others ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ParseError(f"cannot read items file {path}: {exc}",
                         hint="Pass a JSON-lines file, one object per line with id, title and abstract.") from None
    items = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                items.append(Item.from_json(json.loads(line)))
            except (ValueError, TypeError, KeyError) as exc:
                raise ParseError(f"{path}:{number}: {_describe(exc)}",
                                 hint="Each line must be a JSON object with at least id, title and abstract.") from None
    return items


def _describe(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg} at column {exc.colno})"
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    return str(exc)
