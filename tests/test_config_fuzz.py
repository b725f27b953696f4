"""Bad config edits: the shipped example with values swapped for wrong types, ranges and forms, or keys deleted,
either loads or gives a `ConfigError` naming what is wrong, never a traceback.

Seeded, so a failure names the seed that reproduces it.
"""

from __future__ import annotations

import copy
import random
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.config import config_warnings, parse_config
from bot.errors import ConfigError
from tests.support.fuzz import fuzz_case
from tests.test_parser_fuzz import json_paths

EXAMPLE = tomllib.loads((Path(__file__).parents[1] / "config.example.toml").read_text(encoding="utf-8"))
VALUES: list[Any] = [
    None, True, 0, -1, 1.5, 10**30, -(10**30), "", " ", "x", "25:99", "daily 99:00", "weekly sun 06:00",
    "Mars/Olympus", "UTC", "1h", "0s", "-1h", "999999999999h", "1e9s", [], {}, [1], ["x"], {"a": 1}, "\x00",
    "http://[::1", "htps://example.org", "a" * 3000, float("inf"), float("nan"),
]


def edited(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    config = copy.deepcopy(EXAMPLE)
    for _ in range(rng.randint(1, 4)):
        path = rng.choice([p for p in json_paths(config) if p])
        holder = config
        for key in path[:-1]:
            holder = holder[key]
        if isinstance(holder, dict) and rng.random() < 0.15:
            del holder[path[-1]]
        else:
            holder[path[-1]] = copy.deepcopy(rng.choice(VALUES))
    return config


@pytest.mark.parametrize("seed", range(0, 1000, 250))
def test_bad_edits_give_a_config_error_or_a_config(seed: int) -> None:
    for case in range(seed, seed + 250):
        with fuzz_case(f"edited({case})"):
            try:
                config = parse_config(edited(case))
            except ConfigError as exc:
                assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
                continue
            for source in config.sources:
                source.to_source()
            assert all(isinstance(warning, str) for warning in config_warnings(config))
