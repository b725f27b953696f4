"""The TOML config → validated, frozen settings.

Checked once, at load: every problem is reported with its key path ("subscribers[1].timezone: ...") and what
was expected, unknown keys are errors (a `[smpt]` typo must not be ignored), and secrets are never in the file
(only the names of the environment variables that hold them), so nothing printed or logged can leak them.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import ConfigError
from bot.models import Source, SourceOptions
from bot.schedule import Schedule, parse_duration
from bot.sources.ids import url_problem
from bot.sources.kinds import KINDS

DEFAULT_CONFIG = "config.toml"
DEFAULT_DATABASE = "sqlite:///data/digestbot.sqlite3"
DEFAULT_USER_AGENT = "digestbot/0.1 (paper digest bot; +https://github.com/digestbot/digestbot)"
SEMANTIC_MODES = ("auto", "on", "off")

_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    # strict: `min_score = "1"` is a mistake to report, not a string to coerce
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, strict=True)


def _bare_address(value: str) -> str:
    return value.rsplit("<", 1)[-1].rstrip(">").strip()


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_source_url(value: str) -> str:
    """A URL the fetcher can read (`url_problem`): a typo in the scheme is caught here, not on every refresh."""
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(f"{problem} in {value!r}; use an http(s):// URL, a file:// URL or a local path")
    return value


def _check_env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(f"expected the NAME of an environment variable (like SMTP_PASSWORD), got {value!r}")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _one_line(value: str | None) -> str | None:
    """Names go into log lines, outbox keys and mail headers: a line break in one would split or forge them."""
    if value is not None and _CONTROL.search(value):
        raise ValueError(f"must be one line without control characters, got {value!r}")
    return value


def redact_url(url: str) -> str:
    """A database URL with its password hidden, for messages and logs; one that does not parse loses its
    password all the same."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL (a port that is no number): hide it by pattern
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def one_line_error(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        zones = sorted(available_timezones())
        by_city = [z for z in zones if z.rsplit("/", 1)[-1].lower() == value.replace(" ", "_").lower()]
        close = by_city or difflib.get_close_matches(value, zones, n=1, cutoff=0.75)
        guess = f'did you mean "{close[0]}"?' if close else 'expected an IANA name like "Europe/Berlin" or "UTC"'
        raise ValueError(f"unknown time zone {value!r}; {guess}") from None
    return value


class BotSettings(_Strict):
    database: str = DEFAULT_DATABASE
    public_url: str | None = None
    user_agent: str = DEFAULT_USER_AGENT
    admin_email: str | None = None
    admin_slack_channel: str | None = None
    max_age: str = "7d"
    failure_threshold: int = Field(default=3, ge=1)
    http_port: int | None = Field(default=None, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    secret_env: str | None = "DIGESTBOT_SECRET"
    # Semantic similarity (the `semantic` extra): "auto" uses it when installed, "on" wants it (check-config fails
    # and the log says so when it cannot run), "off" never loads the model.
    semantic: Literal["auto", "on", "off"] = "auto"

    _v_max_age = field_validator("max_age")(_check_duration)
    _v_secret_env = field_validator("secret_env")(_check_env_name)

    @field_validator("semantic", mode="before")
    @classmethod
    def _semantic(cls, value: Any) -> Any:
        """true / false are read as "on" / "off"; anything else gets one plain message, not pydantic's."""
        if isinstance(value, bool):
            return "on" if value else "off"
        if value not in SEMANTIC_MODES:
            raise ValueError(f"expected \"auto\", \"on\" or \"off\", got {value!r}")
        return value

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        """Parsed as the store will parse it, so that a bad URL is a config error here, not a traceback later."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        hint = "expected a URL like \"sqlite:///data/digestbot.db\" or \"postgresql+psycopg://user@host:5432/db\""
        try:
            url = make_url(value)
            url.port  # noqa: B018 - parsed lazily: a port that is not a number raises here
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"{hint}, got {redact_url(value)!r} ({one_line_error(exc)})") from None
        if url.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"{hint}: digestbot stores in SQLite or PostgreSQL, got {url.drivername!r}")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http(s) URL like \"https://digest.example.org\", got {value!r}")
        return value.rstrip("/") if value else value

    @field_validator("admin_email")
    @classmethod
    def _admin_email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"expected an email address like \"you@example.org\", got {value!r}")
        return value

    @property
    def max_age_delta(self) -> timedelta:
        return parse_duration(self.max_age)


class SmtpSettings(_Strict):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    sender: str
    timeout: float = Field(default=30.0, gt=0)
    concurrency: int = Field(default=2, ge=1, le=20)

    _v_env = field_validator("password_env")(_check_env_name)

    @model_validator(mode="after")
    def _no_plaintext_login_over_a_network(self) -> SmtpSettings:
        loopback = self.host in ("localhost", "::1") or self.host.startswith("127.")
        if self.security == "none" and self.username and not loopback:
            raise ValueError("security = \"none\" with a username would send the password in plaintext to "
                             f"{self.host}; use \"starttls\" (port 587) or \"tls\" (port 465), or a relay on "
                             "this machine")
        return self

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        address = _bare_address(value)
        if not _EMAIL.match(address):
            raise ValueError(f"expected an address like \"digest@example.org\" or \"Digest <digest@example.org>\", "
                             f"got {value!r}")
        return value

    @property
    def sender_address(self) -> str:
        """The bare address of `sender` ("digest@example.org" from "Digest <digest@example.org>")."""
        return _bare_address(self.sender)

    def password(self) -> str | None:
        """Read at send time, never stored on the settings, so it cannot end up in a repr or a log."""
        return os.environ.get(self.password_env) if self.password_env else None


class SlackSettings(_Strict):
    token_env: str | None = "SLACK_BOT_TOKEN"
    base_url: str = "https://slack.com/api/"

    _v_env = field_validator("token_env")(_check_env_name)

    def token(self) -> str | None:
        return os.environ.get(self.token_env) if self.token_env else None


class SourceConfig(_Strict):
    name: str = Field(min_length=1)
    _v_name = field_validator("name")(_one_line)
    kind: str
    url: str = Field(min_length=1)
    every: str = "1h"
    enabled: bool = True
    announce_types: list[Literal["new", "cross", "replace", "replace-cross"]] = ["new", "cross"]
    max_pages: int = Field(default=5, ge=1, le=100)
    selectors: dict[str, str] = {}

    _v_every = field_validator("every")(_check_duration)
    _v_url = field_validator("url")(_check_source_url)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"expected one of {', '.join(repr(k) for k in KINDS)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _css_selectors(self) -> SourceConfig:
        if self.kind == "css":
            missing = [k for k in ("item", "title") if not self.selectors.get(k)]
            if missing:
                raise ValueError(f"kind \"css\" needs selectors {' and '.join(missing)} "
                                 "(e.g. selectors = { item = \"article\", title = \"h2\", link = \"h2 a\" })")
        unknown = sorted(set(self.selectors) - {"item", "title", "link", "summary", "date"})
        if unknown:
            raise ValueError(f"unknown selector(s) {', '.join(unknown)}; expected item, title, link, summary, date")
        if not any(self.selectors.values()):
            return self
        from bot.sources.feeds import is_css_selector  # selectolax: only for a config that has selectors

        bad = [f"{key} = {css!r}" for key, css in self.selectors.items() if css and not is_css_selector(css)]
        if bad:
            raise ValueError(f"not a CSS selector: {', '.join(bad)}")
        return self

    def to_source(self) -> Source:
        options = SourceOptions(announce_types=frozenset(self.announce_types), max_pages=self.max_pages,
                                selectors=dict(self.selectors))
        return Source(name=self.name, kind=self.kind, url=self.url, every=parse_duration(self.every), options=options)


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


class Config(_Strict):
    bot: BotSettings = BotSettings()
    smtp: SmtpSettings | None = None
    slack: SlackSettings | None = None
    sources: list[SourceConfig] = []
    profiles: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")], ProfileConfig] = {}
    subscribers: list[SubscriberConfig] = []
    slack_channels: list[SlackChannelConfig] = []

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        recipients: list[tuple[str, int, _Recipient]] = [
            *(("subscribers", i, s) for i, s in enumerate(self.subscribers)),
            *(("slack_channels", i, c) for i, c in enumerate(self.slack_channels)),
        ]
        for section, i, rec in recipients:
            for j, name in enumerate(rec.profiles):
                if name not in self.profiles:
                    known = ", ".join(sorted(self.profiles)) or "none defined"
                    problems.append(((section, i, "profiles", j),
                                     f"no profile named {name!r} (profiles: {known})"))
        _duplicates(problems, "sources", [s.name for s in self.sources], "name")
        _duplicates(problems, "subscribers", [s.name for s in self.subscribers], "name")
        _duplicates(problems, "slack_channels", [c.label for c in self.slack_channels], "channel")
        if self.subscribers and self.smtp is None:
            problems.append((("smtp",), "subscribers need an [smtp] section (host, sender) to send email"))
        if any(c.webhook_env is None for c in self.slack_channels) and (self.slack is None or not self.slack.token_env):
            problems.append((("slack",), "slack_channels without webhook_env need [slack] token_env"))
        if self.bot.admin_email and self.smtp is None:
            problems.append((("bot", "admin_email"), "needs an [smtp] section to send the admin email"))
        if self.bot.admin_slack_channel and (self.slack is None or not self.slack.token_env):
            problems.append((("bot", "admin_slack_channel"), "needs [slack] token_env to post to the channel"))
        if problems:
            raise ConfigError("invalid config", problems=[f"{_path(loc)}: {msg}" for loc, msg in problems])
        return self


def _duplicates(problems: list[tuple[tuple[str | int, ...], str]], section: str, names: list[str], key: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            problems.append(((section, i, key), f"duplicate {key} {name!r}; each must be unique"))
        seen.add(name)


def _path(loc: tuple[str | int, ...]) -> str:
    """("subscribers", 1, "timezone") → "subscribers[1].timezone"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config section (model) that the key path `loc` leads to, for "did you mean" (list indexes and profile
    names are passed over)."""
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue
        found = _models_in(field.annotation)
        if not found:
            return None
        model = found[0]
    return model


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6) if model else []
        spelling = f'did you mean "{close[0]}"?' if close else "check the spelling; see config.example.toml"
        return f"{_path(loc)}: unknown key ({spelling})"
    if kind == "missing":
        return f"{_path(loc)}: required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error" or kind.endswith(("_type", "_parsing")):  # say what was there: "got 'rss'"
        shown = error.get("input")
        message += f", got {shown!r}" if isinstance(shown, str | int | float | bool) else ""
    return f"{_path(loc)}: {message}" if loc else message


def parse_config(data: Mapping[str, Any]) -> Config:
    """Validate already-parsed TOML data; ConfigError carries every problem with its key path."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            ctx_error = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_error, ConfigError):
                problems.extend(ctx_error.problems)
            else:
                problems.append(_describe(err))
        raise ConfigError(f"{len(problems)} problem(s) in the config", problems=problems) from None
    except ConfigError:
        raise


def load_config(path: str | Path) -> Config:
    """Read and validate a config file. Errors name the file and the key (or the line, for TOML syntax)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}",
                          hint="Pass --config FILE, or copy config.example.toml to config.toml.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}", problems=[f"{path}: TOML syntax error: {exc}"],
                          hint="Fix the syntax at the line and column given.") from None
    if not any(data.get(key) for key in ("profiles", "sources", "subscribers", "slack_channels")):
        # An emptied or truncated file (an editor's half-write, `: > config.toml`) must not look like "no readers"
        what = "is empty" if not data else "configures nothing"
        message = (f"{path} {what}: no [profiles], [[sources]], [[subscribers]] or [[slack_channels]]")
        raise ConfigError(message, problems=[message],
                          hint="A running digestbot keeps its last good config; restore the file (see "
                               "config.example.toml).")
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", problems=exc.problems) from None


def missing_secrets(config: Config) -> list[str]:
    """Every secret the config names by environment variable that is not set here, with the key that names it
    and what needs it: the bot would start, then fail to send. Secrets live in the environment, never the file."""
    problems = []
    smtp = config.smtp
    if smtp is not None and smtp.username and smtp.password_env and not os.environ.get(smtp.password_env):
        problems.append(f"smtp.password_env: {smtp.password_env} is not set (the SMTP login as {smtp.username!r} "
                        "needs it)")
    token_env = config.slack.token_env if config.slack is not None else None
    users = [f"slack_channels[{i}] {c.label!r}" for i, c in enumerate(config.slack_channels) if not c.webhook_env]
    if config.bot.admin_slack_channel:
        users.append("bot.admin_slack_channel")
    if users and token_env and not os.environ.get(token_env):
        problems.append(f"slack.token_env: {token_env} is not set ({', '.join(users)} post with it)")
    for i, channel in enumerate(config.slack_channels):
        if channel.webhook_env and not os.environ.get(channel.webhook_env):
            problems.append(f"slack_channels[{i}].webhook_env: {channel.webhook_env} is not set (the webhook URL "
                            f"for {channel.label!r})")
    return problems


def config_warnings(config: Config) -> list[str]:
    """Settings that are legal but surely unintended: check-config prints them, the bot still runs.

    Mistakes inside a profile's terms are found by `scoring.check_profile`, which knows how terms match.
    """
    warnings = []
    if config.smtp and config.smtp.security == "none" and config.smtp.username:
        warnings.append("smtp.security: \"none\" with a username sends the password in plaintext; "
                        "use \"starttls\" or \"tls\" unless the relay is on this machine")
    if config.bot.semantic == "on" and config.profiles and not semantic_profiles(config):
        warnings.append("bot.semantic: \"on\", but no profile has a `description` (with semantic similarity on): "
                        "there is nothing to compare papers to, so the model is never loaded")
    used = {p for r in (*config.subscribers, *config.slack_channels) for p in r.profiles}
    if config.subscribers or config.slack_channels:
        warnings.extend(f"profiles.{name}: not used by any subscriber or slack channel"
                        for name in config.profiles if name not in used)
    for i, source in enumerate(config.sources):  # an option its kind does not read (`bot.sources.kinds`)
        reads = KINDS[source.kind].options
        warnings.extend(f"sources[{i}].{option}: kind {source.kind!r} does not read it; it has no effect"
                        for option in ("announce_types", "max_pages", "selectors")
                        if option in source.model_fields_set and option not in reads)
    return warnings


def semantic_profiles(config: Config) -> list[str]:
    """Profiles whose `description` semantic similarity compares papers to (not `semantic = false`); the same
    rule as `bot.scoring.compile_profiles`."""
    return [name for name, profile in config.profiles.items()
            if profile.semantic and profile.description and profile.description.strip()]
