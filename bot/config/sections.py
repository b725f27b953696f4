"""The `[bot]`, `[smtp]`, `[slack]` and `[[sources]]` sections."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bot.config.fields import (
    _EMAIL,
    DEFAULT_DATABASE,
    DEFAULT_USER_AGENT,
    SEMANTIC_MODES,
    _bare_address,
    _check_duration,
    _check_env_name,
    _check_source_url,
    _one_line,
    _Strict,
    one_line_error,
    redact_url,
)
from bot.models import DEFAULT_MAX_PAGES, Source, SourceOptions
from bot.schedule import parse_duration
from bot.sources.kinds import KINDS

MIN_RETENTION = timedelta(days=7)


class BotSettings(_Strict):
    database: str = DEFAULT_DATABASE
    public_url: str | None = None
    user_agent: str = DEFAULT_USER_AGENT
    admin_email: str | None = None
    admin_slack_channel: str | None = None
    max_age: str = "7d"
    retention: str = "180d"  # what the daily retention pass keeps (`bot.retention`)
    failure_threshold: int = Field(default=3, ge=1)
    http_port: int | None = Field(default=None, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    secret_env: str | None = "DIGESTBOT_SECRET"
    # Semantic similarity (the `semantic` extra): "auto" uses it when installed, "on" wants it (check-config fails
    # and the log says so when it cannot run), "off" never loads the model.
    semantic: Literal["auto", "on", "off"] = "auto"

    _v_max_age = field_validator("max_age", "retention")(_check_duration)
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

    @property
    def retention_delta(self) -> timedelta:
        return parse_duration(self.retention)

    @model_validator(mode="after")
    def _retention_covers_max_age(self) -> BotSettings:
        """Papers younger than `max_age` can still be owed to a reader, and scoring reads 30 days back."""
        if self.retention_delta < max(self.max_age_delta, MIN_RETENTION):
            raise ValueError(f"retention {self.retention!r} is shorter than max_age {self.max_age!r} or 7 days: "
                             "papers still owed to readers would be deleted")
        return self


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
    # The Slack app's signing secret: with it, posts carry 👍 / 👎 buttons that post to /slack/actions.
    signing_secret_env: str | None = None

    _v_env = field_validator("token_env", "signing_secret_env")(_check_env_name)

    def token(self) -> str | None:
        return os.environ.get(self.token_env) if self.token_env else None

    def signing_secret(self) -> bytes | None:
        """Read when the endpoint starts, never kept on the settings (so never in a repr or a log)."""
        value = os.environ.get(self.signing_secret_env) if self.signing_secret_env else None
        return value.encode() if value else None

    @property
    def interactive(self) -> bool:
        """Whether posts carry buttons: a signing secret is named and set (buttons nothing verifies would be
        refused by the endpoint)."""
        return self.signing_secret() is not None


class SourceConfig(_Strict):
    name: str = Field(min_length=1)
    _v_name = field_validator("name")(_one_line)
    kind: str
    url: str = Field(min_length=1)
    every: str = "1h"
    enabled: bool = True
    announce_types: list[Literal["new", "cross", "replace", "replace-cross"]] = ["new", "cross"]
    max_pages: int = Field(default=DEFAULT_MAX_PAGES, ge=1, le=100)
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
