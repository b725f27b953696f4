"""The building blocks of the config's validation: strict models, and checks of durations, URLs, names,
environment-variable names and time zones, each with a message that says what was expected."""

from __future__ import annotations

import difflib
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict

from bot.schedule import parse_duration
from bot.sources.ids import url_problem

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
