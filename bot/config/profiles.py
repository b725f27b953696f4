"""`[profiles.NAME]` (what a reader wants) and the recipients who read them: `[[subscribers]]` (email) and
`[[slack_channels]]`."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from bot.config.fields import (
    _EMAIL,
    _check_env_name,
    _check_timezone,
    _one_line,
    _Strict,
)
from bot.schedule import Schedule


def _library_entry(entry: str) -> str:
    from bot.scoring.library import check_entry  # arXiv id rules live with the ids (`bot.sources.ids`)

    return check_entry(entry)


class FieldWeights(_Strict):
    """How much a match counts in each field of a paper (`[profiles.x] fields = { title = 3 }`).

    Bounded, like keyword weights, so that every score stays far inside the range where the scorer's quantised
    sums are exact (`bot.scoring.batch`)."""

    title: float = Field(default=2.0, ge=0, le=100)
    abstract: float = Field(default=1.0, ge=0, le=100)
    authors: float = Field(default=1.0, ge=0, le=100)


KeywordWeights = dict[str, Annotated[float, Field(gt=0, le=100)]]
MAX_KEYWORD_WEIGHT = 100


def _check_weights(table: Mapping[Any, Any]) -> None:
    """One clear message per bad weight (pydantic's union errors would list every alternative)."""
    for term, weight in table.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= MAX_KEYWORD_WEIGHT:
            raise ValueError(f"weight of {term!r} must be a number above 0 and at most {MAX_KEYWORD_WEIGHT} "
                             f"(1 is a plain keyword), got {weight!r}")


class ProfileConfig(_Strict):
    """One `[profiles.NAME]`: what a reader wants. Term matching rules live in `bot.scoring.text`.

    `keywords` is a list of terms, a table of term → weight, or a list mixing terms and one-entry tables;
    `weighted_keywords` flattens any of them. A profile needs keywords or authors (or both).
    """

    keywords: list[str | KeywordWeights] | KeywordWeights = []
    exclude: list[str] = []
    require: list[str] = []
    authors: list[str] = []
    fields: FieldWeights = FieldWeights()
    case_sensitive: bool | list[str] | None = None
    description: str | None = None
    semantic: bool = True  # semantic similarity to `description`, when the `semantic` extra is installed
    min_score: float = Field(default=1.0, ge=0, le=10_000)
    max_items: int | None = Field(default=None, ge=1, le=500)
    library: list[str] = []  # "papers like these": arXiv ids and BibTeX / CSL JSON files (`bot.scoring.library`)

    @field_validator("library")
    @classmethod
    def _library(cls, value: list[str]) -> list[str]:
        return [_library_entry(entry) for entry in value]

    @field_validator("keywords", mode="before")
    @classmethod
    def _keyword_shape(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            _check_weights(value)
            return value
        if not isinstance(value, list):
            raise ValueError("expected a list of terms, or a table of term = weight like { \"DPO\" = 2 }")
        for i, entry in enumerate(value):
            if not isinstance(entry, str | Mapping):
                raise ValueError(f"entry [{i}] is {entry!r}; expected a term in quotes or a table like "
                                 "{ \"DPO\" = 2 }")
            if isinstance(entry, Mapping):
                if len(entry) != 1:
                    raise ValueError(f"entry [{i}] has {len(entry)} terms; write one table per term, like "
                                     "[\"RLHF\", { \"DPO\" = 2 }], or make keywords a table")
                _check_weights(entry)
        return value

    @model_validator(mode="after")
    def _something_to_match(self) -> ProfileConfig:
        if not self.keywords and not self.authors:
            raise ValueError("keywords: expected at least one term (or people to follow in authors = [...])")
        return self

    @property
    def weighted_keywords(self) -> tuple[tuple[str, str, float], ...]:
        """(key path inside the profile, term, weight) per keyword, in order: ("keywords[0]", "DPO", 1.0).

        Worked out on each use, not cached: compiling reads it once, and a cache would keep a key path string per
        keyword for the life of the config (~18 MB for 10,000 profiles)."""
        if isinstance(self.keywords, Mapping):
            return tuple((f"keywords[{term!r}]", term, weight) for term, weight in self.keywords.items())
        out: list[tuple[str, str, float]] = []
        for i, entry in enumerate(self.keywords):
            if isinstance(entry, str):
                out.append((f"keywords[{i}]", entry, 1.0))
            else:
                out.extend((f"keywords[{i}]", term, weight) for term, weight in entry.items())
        return tuple(out)


class _Recipient(_Strict):
    profiles: list[str] = Field(min_length=1)
    schedule: str = "daily 07:00"
    timezone: str = "UTC"
    max_items: int = Field(default=25, ge=1, le=500)
    alert_min_score: float | None = Field(default=None, gt=0)
    send_empty: bool = False
    library: list[str] = []  # "papers like these" for every profile of this recipient (`bot.scoring.library`)

    @field_validator("library")
    @classmethod
    def _library(cls, value: list[str]) -> list[str]:
        return [_library_entry(entry) for entry in value]

    _v_tz = field_validator("timezone")(_check_timezone)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        Schedule.parse(value)
        return value

    @cached_property
    def parsed_schedule(self) -> Schedule:
        return Schedule.parse(self.schedule)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SubscriberConfig(_Recipient):
    name: str = Field(min_length=1)
    email: str
    _v_name = field_validator("name")(_one_line)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"expected an email address like \"ada@example.org\", got {value!r}")
        return value


class SlackChannelConfig(_Recipient):
    channel: str = Field(min_length=1)
    name: str | None = None
    _v_names = field_validator("channel", "name")(_one_line)
    webhook_env: str | None = None

    _v_env = field_validator("webhook_env")(_check_env_name)

    @property
    def label(self) -> str:
        """The recipient name used in the outbox and logs."""
        return self.name or self.channel
