"""Config validation: every problem reported with its key path (or line), nothing silently ignored."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import config_warnings, load_config, parse_config
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

BASE = """
[smtp]
host = "localhost"
sender = "digest@example.org"

[profiles.rlhf]
keywords = ["DPO"]

[[subscribers]]
name = "ada"
email = "ada@example.org"
profiles = ["rlhf"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "config.example.toml")
    assert config.subscribers[0].zone.key == "Europe/Berlin"
    assert config.sources[0].to_source().every.total_seconds() == 3600


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (BASE.replace("[smtp]", "[smpt]"), "smpt: unknown key"),
        (BASE + 'timezone = "Europe/Berln"\n', "subscribers[0].timezone: unknown time zone 'Europe/Berln'"),
        (BASE + 'schedule = "daily 7am"\n', "subscribers[0].schedule: unknown schedule 'daily 7am'"),
        (BASE + 'schedule = "weekly funday 07:00"\n', "subscribers[0].schedule: unknown day 'funday'"),
        (BASE.replace('profiles = ["rlhf"]', 'profiles = ["rlhf", "recsys"]'),
         "subscribers[0].profiles[1]: no profile named 'recsys'"),
        (BASE.replace('email = "ada@example.org"', 'email = "ada"'), "subscribers[0].email: expected an email"),
        (BASE + '[[sources]]\nname = "x"\nkind = "rss"\nurl = "http://x"\n', "sources[0].kind:"),
        (BASE + '[[sources]]\nname = "x"\nkind = "css"\nurl = "http://x"\nselectors = { item = "li" }\n',
         "sources[0]: kind \"css\" needs selectors title"),
        (BASE + '[[sources]]\nname = "x"\nkind = "feed"\nurl = "http://x"\nevery = "soon"\n',
         "sources[0].every: expected a duration"),
        (BASE.replace('keywords = ["DPO"]', 'keywords = ["DPO"]\nkeywrods = ["x"]'),
         "profiles.rlhf.keywrods: unknown key"),
        (BASE.replace('keywords = ["DPO"]', 'keywords = ["DPO"]\nfields = { title = 1000 }'),
         "profiles.rlhf.fields.title:"),
        (BASE.replace('host = "localhost"\n', ""), "smtp.host: required key is missing"),
        (BASE.replace('host = "localhost"', 'host = "smtp.example.org"\nsecurity = "none"\nusername = "ada"'),
         "smtp: security = \"none\" with a username would send the password in plaintext to smtp.example.org"),
        (BASE.replace('sender = "digest@example.org"', 'sender = "digest@example.org"\npassword_env = "hunter2!"'),
         "smtp.password_env: expected the NAME of an environment variable"),
    ],
)
def test_each_mistake_is_reported_with_its_key(tmp_path: Path, edit: str, expected: str) -> None:
    problems = problems_of(tmp_path, edit)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(("edit", "expected"), [
    ('[bot]\ndatabase = "postgresql+psycopg://ada:s3cret@db:port/papers"\n' + BASE,
     "bot.database: expected a URL like"),
    ('[bot]\ndatabase = "mysql://db/papers"\n' + BASE, "digestbot stores in SQLite or PostgreSQL"),
    (BASE.replace('name = "ada"', 'name = "ada\\nERROR forged log line"'),
     "subscribers[0].name: must be one line without control characters"),
    (BASE + '[[slack_channels]]\nchannel = "C1\\r\\nINFO forged"\nprofiles = ["rlhf"]\n',
     "slack_channels[0].channel: must be one line"),
    ("", "is empty: no [profiles]"),
    ("# only a comment\n\n", "is empty"),
    ('[bot]\nmax_age = "3d"\n', "configures nothing"),
])
def test_a_broken_database_url_a_multi_line_name_or_an_empty_file_is_refused(tmp_path: Path, edit: str,
                                                                            expected: str) -> None:
    problems = problems_of(tmp_path, edit)
    assert any(expected in p for p in problems), problems
    assert "s3cret" not in " ".join(problems)


@pytest.mark.parametrize(("edit", "expected"), [
    (BASE + 'timzone = "UTC"\n', 'subscribers[0].timzone: unknown key (did you mean "timezone"?)'),
    (BASE + 'timezone = "Berlin"\n', 'subscribers[0].timezone: unknown time zone \'Berlin\'; did you mean '
                                     '"Europe/Berlin"?'),
    (BASE.replace('keywords = ["DPO"]', 'keywords = ["DPO"]\nmin_score = "1"'),
     "profiles.rlhf.min_score: Input should be a valid number, got '1'"),
    (BASE + '[[sources]]\nname = "x"\nkind = "rss"\nurl = "http://x"\n', "got 'rss'"),
])
def test_mistakes_get_a_suggestion_and_their_value_back_and_strings_are_not_numbers(tmp_path: Path, edit: str,
                                                                                 expected: str) -> None:
    problems = problems_of(tmp_path, edit)
    assert any(expected in p for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = BASE.replace("[smtp]", "[smpt]") + 'timezone = "Mars/Olympus"\nschedule = "hourly"\n'
    problems = problems_of(tmp_path, text)
    assert len(problems) >= 3
    assert any(p.startswith("smpt:") for p in problems)
    assert any(p.startswith("subscribers[0].timezone:") for p in problems)
    assert any(p.startswith("subscribers[0].schedule:") for p in problems)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, BASE + "\n[profiles.broken\nkeywords = []\n")
    assert any("TOML syntax error" in p and "line 14, column 17" in p for p in problems), problems


def test_missing_file_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert "not found" in info.value.message
    assert "config.example.toml" in info.value.hint


def test_duplicate_names_and_missing_smtp(tmp_path: Path) -> None:
    text = BASE.replace('[smtp]\nhost = "localhost"\nsender = "digest@example.org"\n', "")
    text += '[[subscribers]]\nname = "ada"\nemail = "b@example.org"\nprofiles = ["rlhf"]\n'
    problems = problems_of(tmp_path, text)
    assert any(p.startswith("subscribers[1].name: duplicate") for p in problems)
    assert any(p.startswith("smtp:") for p in problems)


def test_profiles_only_config_is_enough_for_rank(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[profiles.a]\nkeywords = ["x"]\n'))
    assert list(config.profiles) == ["a"]
    assert config.bot.database.startswith("sqlite:///")


def test_secrets_are_read_from_the_environment_not_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE.replace('sender = "digest@example.org"', 'sender = "digest@example.org"\npassword_env = "SMTP_PW"')
    monkeypatch.setenv("SMTP_PW", "s3cret-value")
    config = load_config(write(tmp_path, text))
    assert config.smtp is not None
    assert config.smtp.password() == "s3cret-value"
    assert "s3cret-value" not in repr(config)


def test_warnings_for_plaintext_login_and_unused_profile(tmp_path: Path) -> None:
    text = BASE.replace('host = "localhost"', 'host = "localhost"\nsecurity = "none"\nusername = "ada"')
    text += '[profiles.spare]\nkeywords = ["x"]\n'
    warnings = config_warnings(load_config(write(tmp_path, text)))
    assert any(w.startswith("smtp.security:") and "plaintext" in w for w in warnings)
    assert any(w.startswith("profiles.spare:") for w in warnings)
    assert not any(w.startswith("profiles.rlhf") for w in warnings)


@pytest.mark.parametrize(("url", "problem"), [
    ("htps://arxiv.org/list/cs.CL/new", "unsupported URL scheme 'htps'"),
    ("ftp://example.org/feed.xml", "unsupported URL scheme 'ftp'"),
    ("http://[::1/feed", "not a valid URL (Invalid IPv6 URL)"),
    ("https:///papers", "a URL without a host"),
])
def test_a_source_url_that_cannot_be_fetched_is_a_config_error(tmp_path: Path, url: str, problem: str) -> None:
    text = BASE + f'[[sources]]\nname = "typo"\nkind = "feed"\nurl = "{url}"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    [message] = caught.value.problems
    assert message.startswith("sources[0].url: ") and problem in message


def test_css_selectors_reach_the_parser(tmp_path: Path) -> None:
    text = BASE + ('[[sources]]\nname = "lab"\nkind = "css"\nurl = "http://x"\n'
                   'selectors = { item = "li.paper", title = "h3", link = "h3 a" }\n')
    source = load_config(write(tmp_path, text)).sources[0].to_source()
    assert source.options.selectors == {"item": "li.paper", "title": "h3", "link": "h3 a"}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text.replace('link = "h3 a"', 'link = "h3 > > a"')))
    assert caught.value.problems == ["sources[0]: not a CSS selector: link = 'h3 > > a'"]


def test_source_options_reach_the_parser_and_pager(tmp_path: Path) -> None:
    """`announce_types` and `max_pages` are what the arXiv parsers and `fetch_all_pages` read from the source."""
    config = load_config(write(tmp_path, BASE + """
[[sources]]
name = "lg"
kind = "arxiv_list"
url = "https://arxiv.org/list/cs.LG/new"
announce_types = ["new", "replace"]
max_pages = 2

[[sources]]
name = "plain"
kind = "arxiv_feed"
url = "https://rss.arxiv.org/rss/cs.LG"
"""))
    listing, plain = (source.to_source() for source in config.sources)
    assert (listing.options.announce_types, listing.options.max_pages) == (frozenset({"new", "replace"}), 2)
    assert (plain.options.announce_types, plain.options.max_pages) == (frozenset({"new", "cross"}), 5)


def test_loading_a_config_imports_no_fetcher_or_parser() -> None:
    """The config reads the source-kind table (`bot.sources.kinds`), not the parsers: neither httpx nor
    selectolax is imported to load one, nor to check a source's kind."""
    code = ("import sys; from bot.config import load_config; load_config(sys.argv[1]); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'selectolax'}))")
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "config.example.toml")], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stderr


def test_every_source_kind_names_functions_that_exist() -> None:
    from bot.sources.kinds import KINDS

    for kind in KINDS.values():
        for target in (kind.parser, kind.next_page, kind.first_page):
            if target is not None:
                module, _, name = target.partition(":")
                assert callable(getattr(importlib.import_module(module), name)), (kind.name, target)


def test_an_option_the_kind_does_not_read_is_a_warning() -> None:
    config = parse_config({"sources": [{"name": "hf", "kind": "hf_papers", "url": "https://huggingface.co/papers",
                                        "max_pages": 3, "announce_types": ["new"]},
                                       {"name": "list", "kind": "arxiv_list", "url": "https://arxiv.org/list/cs.CL/new",
                                        "max_pages": 3}]})
    warnings = config_warnings(config)
    assert "sources[0].max_pages: kind 'hf_papers' does not read it; it has no effect" in warnings
    assert any(w.startswith("sources[0].announce_types:") for w in warnings)
    assert not any(w.startswith("sources[1].") for w in warnings)
