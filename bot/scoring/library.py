"""A reader's starting library: "papers like these", named by arXiv id or in a BibTeX / Zotero export, counted as
👍 ratings for the profiles it is given for (`bot.scoring.feedback`).

    [profiles.rlhf]
    library = ["2305.18290", "papers/alignment.bib"]     # arXiv ids, and files relative to the config file

A file is BibTeX (`.bib`, `.bibtex`: Zotero, Mendeley, Google Scholar and arXiv all export it) or CSL JSON
(`.json`: Zotero's "Export Collection… → CSL JSON"). An entry needs a title; its abstract, when the export has
one, is what makes it useful. An arXiv id names a paper digestbot has stored (or one in a library file, by its
`eprint`/URL); one it has never seen is reported by `digestbot check-config` and counts once a source brings it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import ConfigError
from bot.models import Item
from bot.sources.ids import arxiv_id, canonical_id

FILE_SUFFIXES = (".bib", ".bibtex", ".json")
MAX_FILE_BYTES = 20 * 1024 * 1024  # a library of tens of thousands of entries; anything larger is not one
_ENTRY = re.compile(r"@\s*([A-Za-z]+)\s*([{(])")
_FIELD = re.compile(r"\s*([A-Za-z][\w:.+-]*)\s*=\s*")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+\*?\s*|\\.")


def is_file_entry(entry: str) -> bool:
    """A library entry that names a file rather than an arXiv id."""
    return arxiv_id(entry) is None


def check_entry(entry: str) -> str:
    """The entry itself, or ValueError saying what a library entry can be (for the config's validator)."""
    if arxiv_id(entry) is None and not entry.lower().endswith(FILE_SUFFIXES):
        raise ValueError(f"{entry!r} is neither an arXiv id (like \"2305.18290\") nor a .bib or .json file")
    return entry


def _braced(text: str, start: int, close: str) -> tuple[str, int]:
    """The text from `start` up to the `close` that balances the braces, and the position after it."""
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif char == close and depth == 0:
            return text[start:i], i + 1
        i += 1
    raise ValueError("an entry is not closed")


def _value(body: str, i: int) -> tuple[str, int]:
    """One field value: {…}, "…", a number or a @string name, joined by #."""
    parts = []
    while True:
        while i < len(body) and body[i].isspace():
            i += 1
        if i < len(body) and body[i] == "{":
            value, i = _braced(body, i + 1, "}")
        elif i < len(body) and body[i] == '"':
            value, i = _braced(body, i + 1, '"')
        else:
            match = re.compile(r"[^,#}\s]*").match(body, i)
            value, i = (match.group(0), match.end()) if match else ("", i)
        parts.append(value)
        while i < len(body) and body[i].isspace():
            i += 1
        if i < len(body) and body[i] == "#":
            i += 1
            continue
        return "".join(parts), i


def parse_bibtex(text: str) -> list[dict[str, str]]:
    """Each entry's fields (lowercased names) and its `ID` and `ENTRYTYPE`; @comment, @string and @preamble are
    skipped. Braces that only protect capitals are dropped, LaTeX commands (accents, \\emph) are unwrapped."""
    entries = []
    for match in _ENTRY.finditer(text):
        kind = match.group(1).lower()
        if kind in ("comment", "string", "preamble"):
            continue
        try:
            body, _ = _braced(text, match.end(), "}" if match.group(2) == "{" else ")")
        except ValueError:
            continue  # a broken last entry costs that entry, not the library
        key, _, rest = body.partition(",")
        fields = {"ID": key.strip(), "ENTRYTYPE": kind}
        i = 0
        while True:
            found = _FIELD.match(rest, i)
            if found is None:
                break
            value, i = _value(rest, found.end())
            fields[found.group(1).lower()] = _plain(value)
            while i < len(rest) and rest[i] in ", \t\r\n":
                i += 1
        entries.append(fields)
    return entries


def _arxiv_in(text: str) -> str | None:
    """The id in "arXiv preprint arXiv:2401.00001" (how Google Scholar cites a preprint)."""
    found = re.search(r"arxiv:\s*([\w./-]+)", text, re.IGNORECASE)
    return found.group(1) if found else None


def _plain(value: str) -> str:
    return " ".join(_LATEX_COMMAND.sub("", value).replace("{", "").replace("}", "").replace("~", " ").split())


def _item(title: str, abstract: str, *, arxiv: str | None, doi_text: str | None, url: str | None,
          key: str, path: Path) -> Item:
    try:
        identity = canonical_id(arxiv=arxiv, doi_text=doi_text, url=url)
    except ValueError:  # nothing but a title: its own id, stable for the file
        identity = f"library:{path.name}:{key}"
    return Item(id=identity, title=title, url=url or "", abstract=abstract)


def read_file(path: Path) -> list[Item]:
    """The papers of one library file; ConfigError naming the file when it cannot be read or holds none."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"library file {path} is over {MAX_FILE_BYTES // 2**20} MB")
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read library file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"library file {path} is not UTF-8 text") from None
    items = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"library file {path} is not JSON: {exc}",
                              hint="Export the collection from Zotero as CSL JSON, or as BibTeX (.bib).") from None
        for i, entry in enumerate(data if isinstance(data, list) else data.get("items", [])
                                  if isinstance(data, dict) else []):
            if isinstance(entry, dict) and str(entry.get("title") or "").strip():
                url = str(entry.get("URL") or entry.get("url") or "") or None
                items.append(_item(str(entry["title"]).strip(), str(entry.get("abstract") or ""),
                                   arxiv=str(entry.get("number") or "") or url, doi_text=entry.get("DOI"),
                                   url=url, key=str(entry.get("id", i)), path=path))
    else:
        for entry in parse_bibtex(text):
            if entry.get("title"):
                items.append(_item(entry["title"], entry.get("abstract", ""),
                                   arxiv=entry.get("eprint") or entry.get("arxivid")
                                   or _arxiv_in(entry.get("journal", "")),
                                   doi_text=entry.get("doi"), url=entry.get("url"), key=entry["ID"], path=path))
    if not items:
        raise ConfigError(f"library file {path} holds no paper with a title",
                          hint="Use a BibTeX (.bib) or CSL JSON (.json) export of your papers.")
    return items


@dataclass(slots=True)
class Library:
    """A library resolved to papers: those it names that digestbot knows, and the arXiv ids it does not."""

    items: list[Item] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def resolve(entries: Sequence[str], stored: Callable[[Sequence[str]], Mapping[str, Item]],
            files: Mapping[str, list[Item]] | None = None) -> Library:
    """The papers `entries` name: files read (or taken from `files`, read already), arXiv ids looked up among the
    files' papers, then among `stored` items."""
    library = Library()
    from_files: dict[str, Item] = {}
    ids = []
    for entry in entries:
        if is_file_entry(entry):
            papers = files[entry] if files is not None and entry in files else read_file(Path(entry))
            from_files.update((item.id, item) for item in papers)
        else:
            ids.append(f"arxiv:{arxiv_id(entry)}")
    known = stored([i for i in ids if i not in from_files])
    for paper in ids:
        item = from_files.get(paper) or known.get(paper)
        if item is None:
            library.unknown.append(paper)
        elif item not in library.items:
            library.items.append(item)
    library.items.extend(item for item in from_files.values() if item not in library.items)
    return library


def absolute(entries: Iterable[str], base: Path) -> list[str]:
    """File entries made absolute against `base` (the config file's directory); arXiv ids as they are."""
    return [str((base / entry).resolve()) if is_file_entry(entry) and not Path(entry).is_absolute() else entry
            for entry in entries]
