"""The whole config: cross-references between sections, and loading a TOML file into it with every problem
reported at its key path."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator

from bot.config.fields import _Strict
from bot.config.profiles import (
    ProfileConfig,
    SlackChannelConfig,
    SubscriberConfig,
    _Recipient,
)
from bot.config.sections import BotSettings, SlackSettings, SmtpSettings, SourceConfig
from bot.errors import ConfigError


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


def _libraries_relative_to(data: dict[str, Any], base: Path) -> None:
    """Library files named relative to the config file, as a reader expects, whatever directory digestbot runs in."""
    holders = [*(data.get("profiles") or {}).values(), *(data.get("subscribers") or []),
               *(data.get("slack_channels") or [])] if isinstance(data.get("profiles", {}), dict) else []
    for holder in holders:
        if isinstance(holder, dict) and isinstance(holder.get("library"), list) and all(
                isinstance(entry, str) for entry in holder["library"]):
            from bot.scoring.library import absolute  # only for a config that has a library

            holder["library"] = absolute(holder["library"], base)


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
    _libraries_relative_to(data, path.resolve().parent)
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", problems=exc.problems) from None
