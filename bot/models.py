"""The dataclasses that pass between pipeline stages.

Stages never hand each other ORM rows or loose dicts: these are the contracts. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

DEFAULT_ANNOUNCE_TYPES = frozenset({"new", "cross"})  # arXiv: new papers and cross-lists, not replacements
DEFAULT_MAX_PAGES = 5


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """What a source's parser and pager read from its `[[sources]]` entry: typed, and checked once by the config.

    Which kinds read which option is said in `bot.sources.kinds`."""

    announce_types: frozenset[str] | None = DEFAULT_ANNOUNCE_TYPES  # arXiv kinds; None keeps every type
    max_pages: int = DEFAULT_MAX_PAGES  # paged kinds stop after this many pages
    selectors: Mapping[str, str] = field(default_factory=dict)  # kind "css": item, title, link, summary, date


@dataclass(frozen=True, slots=True)
class Source:
    """One `[[sources]]` entry: where to fetch, how to parse, how often."""

    name: str
    kind: str
    url: str
    every: timedelta = timedelta(hours=1)
    options: SourceOptions = field(default_factory=SourceOptions)


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched document, before parsing. `url` is the final URL after redirects (or the file path)."""

    url: str
    body: bytes
    fetched_at: datetime
    content_type: str = ""
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None

    def text(self) -> str:
        """Decoded body: UTF-8 (what every supported site serves), never failing on a stray byte."""
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Item:
    """One paper or entry as parsed from a page.

    `id` is canonical across sources: `arxiv:<id without version>`, else `doi:<doi>`, else the normalised URL,
    so the same paper seen on Hugging Face and on arXiv is one item.
    """

    id: str
    title: str
    url: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    metrics: Mapping[str, int] = field(default_factory=dict)
    section: str | None = None
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON shape `digestbot parse --json` prints and the outbox freezes."""
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "abstract": self.abstract,
            "authors": list(self.authors),
            "published": self.published.isoformat() if self.published else None,
            "metrics": dict(self.metrics),
            "section": self.section,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Any) -> Item:
        """The inverse of `to_json`, for JSON-lines input; ValueError/KeyError name what is malformed."""
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        authors = data.get("authors") or []
        if not isinstance(authors, list | tuple):
            raise ValueError(f"'authors' must be a list, got {type(authors).__name__}")
        metrics = data.get("metrics") or {}
        if not isinstance(metrics, Mapping):
            raise ValueError(f"'metrics' must be an object, got {type(metrics).__name__}")
        published = data.get("published")
        return cls(
            id=str(data["id"]),
            title=str(data.get("title") or ""),
            url=str(data.get("url") or ""),
            abstract=str(data.get("abstract") or ""),
            authors=tuple(str(a) for a in authors),
            published=datetime.fromisoformat(str(published)) if published else None,
            metrics={str(k): int(v) for k, v in metrics.items()},
            section=data.get("section"),
            source=str(data.get("source") or ""),
        )


@dataclass(slots=True)
class Reason:
    """Why an item scored: one term, the field it matched in, how often, and what it added to the score.

    Not frozen, only for speed (a frozen dataclass costs four times as much to build, and the scorer builds
    millions): treat it as immutable.

    `kind` is "keyword" for the profile's own terms and "description" for words taken from its plain-words
    description, which weigh less and are shown apart, so the reader sees their keywords first; "semantic" for
    the similarity of the item to that description (`bot.scoring.semantic`), "author" for a followed author,
    "feedback" for what the reader's ratings added or took away (`bot.scoring.feedback`).
    """

    term: str
    field: str
    count: int
    weight: float
    kind: str = "keyword"

    def to_json(self) -> dict[str, Any]:
        return {"term": self.term, "field": self.field, "count": self.count, "weight": round(self.weight, 4),
                "kind": self.kind}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reason:
        return cls(term=str(data["term"]), field=str(data["field"]), count=int(data["count"]),
                   weight=float(data["weight"]), kind=str(data.get("kind") or "keyword"))


RELATED_MIN_WEIGHT = 0.1  # a description word that added less is common in the corpus: counted, never shown


def shown_related(reason: Reason) -> bool:
    """Whether a description word is worth a reader's attention: one that added at least `RELATED_MIN_WEIGHT`.
    The rest (words most papers of the corpus use) still count in the score and are kept in the reasons."""
    return reason.weight >= RELATED_MIN_WEIGHT


def meaning_label(reason: Reason) -> str:
    """How the similarity to the description is shown: what it added, in plain words."""
    return f"close to your description +{reason.weight:.1f}"


@dataclass(slots=True)
class ScoredItem:
    """An item scored against one profile, with the reasons the digest shows (not frozen, for speed, like
    `Reason`: treat it as immutable)."""

    item: Item
    profile: str
    score: float
    reasons: tuple[Reason, ...] = ()
    also: tuple[str, ...] = ()  # the recipient's other profiles this item passes too (the score is `profile`'s)

    @property
    def profiles(self) -> tuple[str, ...]:
        """Every profile of the recipient it matched, the one that scored it first."""
        return (self.profile, *self.also)

    def explain(self, *, related: int = 3) -> str:
        """Compact reasons, strongest first: "by Yann LeCun, DPO in title, reward model in abstract; related: policy".

        Followed authors first, then keyword matches with their fields; description words follow, at most
        `related` of them and only those that added something (`shown_related`), then what similarity to the
        description added ("close to your description +1.3").
        """
        by_term: dict[str, list[str]] = {}
        described: list[str] = []
        people: list[str] = []
        similar = ""
        learned = ""
        for reason in sorted(self.reasons, key=lambda r: -r.weight):
            if reason.kind == "feedback":  # what the reader's ratings did (`bot.scoring.feedback`)
                learned = reason.term
                continue
            if reason.kind == "semantic":
                similar = meaning_label(reason)
                continue
            if reason.kind == "author":
                if reason.term not in people:
                    people.append(reason.term)
                continue
            if reason.kind != "keyword":
                if reason.term not in described and shown_related(reason):
                    described.append(reason.term)
                continue
            fields = by_term.setdefault(reason.term, [])
            if reason.field not in fields:
                fields.append(reason.field)
        text = ", ".join([*(f"by {name}" for name in people),
                          *(f"{term} in {' and '.join(fields)}" for term, fields in by_term.items())])
        if described[:related]:
            text += ("; related: " if text else "related: ") + ", ".join(described[:related])
        if similar:
            text += f"; {similar}" if text else similar
        if learned:
            text += f"; {learned}" if text else learned
        return text


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """What a digest says about a source, so an empty digest is never ambiguous."""

    name: str
    failing: bool
    consecutive_failures: int = 0
    last_error: str | None = None
    last_success: datetime | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """A message to the bot's admin about the bot itself: a source failing for a while, or recovered.

    Planned into the outbox like a digest, so it is sent once, survives restarts and is retried.
    """

    kind: str  # "source-failing" or "source-recovered"
    title: str
    lines: tuple[str, ...]
    generated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "lines": list(self.lines),
                "generated_at": self.generated_at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notice:
        return cls(kind=str(data["kind"]), title=str(data["title"]), lines=tuple(str(x) for x in data["lines"]),
                   generated_at=datetime.fromisoformat(str(data["generated_at"])))


@dataclass(frozen=True, slots=True)
class ItemVector:
    """An item's embedding as the store keeps it: float32 bytes, and a hash of the text they were computed from,
    so that an edited abstract is embedded again. Bytes, not arrays, so the store needs no NumPy."""

    item_id: str
    text_hash: bytes
    vector: bytes
