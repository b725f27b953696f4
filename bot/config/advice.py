"""What `check-config` says beyond errors: secrets the environment lacks, settings that are legal but surely
unintended."""

from __future__ import annotations

import os
from pathlib import Path

from bot.config.load import Config
from bot.errors import BotError
from bot.sources.kinds import KINDS


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


def library_problems(config: Config) -> list[str]:
    """Library files (`library = [...]`) that cannot be read or hold no paper, each with its key: check-config
    fails on them (a running bot logs them and plans without that file)."""
    from bot.scoring.library import is_file_entry, read_file

    holders: list[tuple[str, list[str]]] = [(f"profiles.{name}", p.library) for name, p in config.profiles.items()]
    holders += [(f"subscribers[{i}]", s.library) for i, s in enumerate(config.subscribers)]
    holders += [(f"slack_channels[{i}]", c.library) for i, c in enumerate(config.slack_channels)]
    problems = []
    for where, entries in holders:
        for j, entry in enumerate(entries):
            if is_file_entry(entry):
                try:
                    read_file(Path(entry))
                except BotError as exc:
                    problems.append(f"{where}.library[{j}]: {exc.message}")
    return problems


def semantic_profiles(config: Config) -> list[str]:
    """Profiles whose `description` semantic similarity compares papers to (not `semantic = false`); the same
    rule as `bot.scoring.compile_profiles`."""
    return [name for name, profile in config.profiles.items()
            if profile.semantic and profile.description and profile.description.strip()]
