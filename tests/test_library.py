"""A reader's starting library ("papers like these"): BibTeX and CSL JSON as reference managers export them,
arXiv ids, the config keys that name them, check-config, and a first digest that listens to it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import load_config, parse_config
from bot.errors import ConfigError
from bot.models import Item
from bot.outbox.tastes import libraries
from bot.scoring.library import parse_bibtex, read_file, resolve
from bot.store import Store

DATA = Path(__file__).parent / "data" / "library"
T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def test_bibtex_as_reference_managers_write_it() -> None:
    papers = {item.id: item for item in read_file(DATA / "alignment.bib")}
    assert list(papers) == ["arxiv:2606.01234", "arxiv:2606.05678", "doi:10.5555/debate.2025", "arxiv:2401.00001"]
    tools = papers["arxiv:2606.01234"]
    assert tools.title == "Teaching LLM Agents to Use Tools: Multi-Agent Planning with Verified Tool Calls"
    assert tools.abstract.startswith("Language model agents that call tools") and "\n" not in tools.abstract
    assert papers["doi:10.5555/debate.2025"].title == "Multi-Agent Debate Improves Reasoning of Language Models"
    assert papers["arxiv:2401.00001"].abstract == ""  # Google Scholar exports no abstract: the title still counts


def test_bibtex_edge_cases() -> None:
    entries = parse_bibtex(r'''@String{x = "y"} @preamble{"\newcommand"}
        @Article(k1, Title = {A {\em nested} {B}race \& Caf\'{e}}, note = "q" # {r}, year = 2020,)
        @misc{k2, title={Second}}  @misc{k3, title={never closed''')
    assert [e["ID"] for e in entries] == ["k1", "k2"]
    assert entries[0]["title"] == "A nested Brace Cafe" and entries[0]["note"] == "qr" and entries[0]["year"] == "2020"


def test_zotero_csl_json() -> None:
    papers = read_file(DATA / "zotero.json")
    assert [(p.id, p.title) for p in papers] == [
        ("arxiv:2606.09999", "Tool-Augmented Language Model Agents for Scientific Workflows"),
        ("doi:10.5555/agents.bench", "Benchmarks for Agents that Use Tools")]


@pytest.mark.parametrize(("name", "text", "says"), [
    ("missing.bib", None, "cannot read library file"),
    ("empty.bib", "% nothing here\n", "holds no paper with a title"),
    ("bad.json", "{not json", "is not JSON"),
    ("latin1.bib", "@misc{k, title={Caf\xe9}}", "is not UTF-8"),
])
def test_a_library_file_that_cannot_be_used_is_a_clear_error(tmp_path: Path, name: str, text: str | None,
                                                               says: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match=says) as caught:
        read_file(path)
    assert str(path) in caught.value.message


def test_arxiv_ids_resolve_from_files_then_the_store_and_the_rest_are_reported() -> None:
    stored = {"arxiv:2606.11111": Item(id="arxiv:2606.11111", title="Stored", url="https://arxiv.org/abs/2606.11111")}
    library = resolve(["2606.01234", "arXiv:2606.11111v2", "2606.22222", str(DATA / "alignment.bib")],
                      lambda ids: {i: stored[i] for i in ids if i in stored})
    ids = [item.id for item in library.items]
    assert ids[:2] == ["arxiv:2606.01234", "arxiv:2606.11111"] and len(ids) == 5  # the file's, each once
    assert library.unknown == ["arxiv:2606.22222"]


def test_config_library_keys_are_checked_and_files_are_relative_to_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"profiles": {"a": {"keywords": ["x"], "library": ["not a paper"]}}})
    assert "profiles.a.library: " in caught.value.problems[0] and "neither an arXiv id" in caught.value.problems[0]
    (tmp_path / "refs").mkdir()
    shutil.copy(DATA / "alignment.bib", tmp_path / "refs" / "mine.bib")
    config = tmp_path / "config.toml"
    config.write_text('[profiles.agents]\nkeywords = ["agent"]\nlibrary = ["2606.01234", "refs/mine.bib"]\n'
                      '[[slack_channels]]\nchannel = "C1"\nwebhook_env = "HOOK"\nprofiles = ["agents"]\n'
                      'library = ["refs/mine.bib"]\n')
    loaded = load_config(config)
    assert loaded.profiles["agents"].library == ["2606.01234", str(tmp_path / "refs" / "mine.bib")]
    assert loaded.slack_channels[0].library == [str(tmp_path / "refs" / "mine.bib")]


def test_check_config_names_the_key_of_a_library_file_it_cannot_read(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.agents]\nkeywords = ["agent"]\nlibrary = ["2606.01234", "gone.bib"]\n'
                      '[[slack_channels]]\nchannel = "C1"\nwebhook_env = "HOOK"\nprofiles = ["agents"]\n')
    result = subprocess.run([sys.executable, "-m", "bot", "check-config", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, check=False, env={"HOOK": "https://x",
                                                                                         "PATH": "/usr/bin"})
    assert result.returncode == 1
    assert re.search(r"profiles\.agents\.library\[1\]: cannot read library file .*gone\.bib", result.stderr)


def test_a_library_moves_the_first_digest_and_says_so(store: Store) -> None:
    """ada names a library of tool-using agents; bob does not. Planning gives ada's papers like her library a
    push, each saying "like … in your library"; bob's ranking is the profile's own."""
    from bot.app import App  # noqa: F401 - the planning the daemon runs
    from bot.outbox.plan import plan_deliveries
    from bot.scoring import compile_profiles

    papers = [Item(id=f"arxiv:2612.{i:05d}", title=title, url=f"https://arxiv.org/abs/2612.{i:05d}", abstract=abstract)
              for i, (title, abstract) in enumerate([
                  ("Agents that verify each other's tool calls", "Several language model agents plan and check "
                   "tool calls; verification of tool use helps web agents."),
                  ("An agent for protein design", "A single agent designs proteins with a diffusion model."),
                  ("Robot agents in warehouses", "Agents move boxes; we study their path planning."),
                  ("A web agent with memory", "A web agent browses, searches and remembers evidence.")])]
    store.save_items("src", papers, seen_at=T0)
    reader = {"profiles": ["agents"], "schedule": "daily 07:00", "timezone": "UTC", "max_items": 10}
    config = parse_config({
        "bot": {"database": "sqlite://"},
        "smtp": {"host": "localhost", "sender": "d@example.org"},
        "profiles": {"agents": {"keywords": ["agent", "agents"]}},
        "subscribers": [{"name": "ada", "email": "ada@example.org", "library": [str(DATA / "alignment.bib")],
                         **reader},
                        {"name": "bob", "email": "bob@example.org", **reader}],
    })
    assert [item.id for item in libraries(config, store)[("email", "ada")]["agents"]][0] == "arxiv:2606.01234"
    matcher = compile_profiles(config.profiles, corpus=papers)
    first = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    plan_deliveries(config, store, matcher, now=first)  # meets them
    plan_deliveries(config, store, matcher, now=datetime(2026, 12, 1, 7, 5, tzinfo=UTC))
    rows = {row.recipient: row for row in store.deliveries(None, limit=10)}
    ada, bob = rows["ada"].payload, rows["bob"].payload
    assert {e.id for e in ada.items} == {e.id for e in bob.items} == {p.id for p in papers}
    said = [r.term for e in ada.items for r in e.reasons if r.kind == "feedback"]
    assert any("in your library" in term for term in said), said
    assert not any(r.kind == "feedback" for e in bob.items for r in e.reasons)
    top = ada.items[0].id
    assert top in ("arxiv:2612.00000", "arxiv:2612.00003")  # the tool-verifying or the web agent: like her library
