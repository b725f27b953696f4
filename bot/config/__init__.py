"""The TOML config → validated, frozen settings.

Checked once, at load: every problem is reported with its key path ("subscribers[1].timezone: ...") and what
was expected, unknown keys are errors (a `[smpt]` typo must not be ignored), and secrets are never in the file
(only the names of the environment variables that hold them), so nothing printed or logged can leak them.

The package follows the file: `fields` (shared checks), `sections` ([bot], [smtp], [slack], [[sources]]), `profiles`
(profiles and recipients), `load` (the whole config, and reading it), `advice` (what check-config adds).
"""

from bot.config.advice import config_warnings, library_problems, missing_secrets, semantic_profiles
from bot.config.fields import (
    DEFAULT_CONFIG,
    DEFAULT_DATABASE,
    DEFAULT_USER_AGENT,
    SEMANTIC_MODES,
    one_line_error,
    redact_url,
)
from bot.config.load import Config, load_config, parse_config
from bot.config.profiles import (
    MAX_KEYWORD_WEIGHT,
    FieldWeights,
    KeywordWeights,
    ProfileConfig,
    SlackChannelConfig,
    SubscriberConfig,
)
from bot.config.sections import BotSettings, SlackSettings, SmtpSettings, SourceConfig

__all__ = [
    "BotSettings", "Config", "DEFAULT_CONFIG", "DEFAULT_DATABASE", "DEFAULT_USER_AGENT", "FieldWeights",
    "KeywordWeights", "MAX_KEYWORD_WEIGHT", "ProfileConfig", "SEMANTIC_MODES", "SlackChannelConfig",
    "SlackSettings", "SmtpSettings", "SourceConfig", "SubscriberConfig", "config_warnings", "load_config",
    "library_problems", "missing_secrets", "one_line_error", "parse_config", "redact_url", "semantic_profiles",
]
