"""The reference copies under tests/data match their recorded sources and versions.

The tests validate generated files against copies of Railway's command tree and
config schema (a clone of this repository has nothing beside it to read). A
copy that drifts from its record, or a record that describes another CLI
version than the one generated repositories pin, would make those checks
prove the wrong thing.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "railway"
SOURCES = json.loads((DATA / "SOURCES.json").read_text(encoding="utf-8"))


def pinned_cli() -> str:
    pins = (ROOT / "includes" / "pins.jinja").read_text(encoding="utf-8")
    match = re.search(r'"railway_cli": "(\d+\.\d+\.\d+)"', pins)
    assert match, "includes/pins.jinja pins no railway_cli version"
    return match.group(1)


def test_every_copy_has_a_record() -> None:
    copies = {p.name for p in DATA.iterdir() if p.name not in {"README.md", "SOURCES.json"}}
    assert copies == set(SOURCES)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_copy_matches_its_record(name: str) -> None:
    digest = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
    assert digest == SOURCES[name]["sha256"], f"{name} changed: update SOURCES.json with it"


def test_cli_copies_describe_the_pinned_cli() -> None:
    cli = pinned_cli()
    for name, record in SOURCES.items():
        if name.startswith("cli-"):
            assert record["version"] == cli, name
    tree = json.loads((DATA / "cli-commands.json").read_text(encoding="utf-8"))
    assert tree["source"]["version"] == cli
    for name in ("cli-state.json", "cli-verdicts.json"):
        assert json.loads((DATA / name).read_text(encoding="utf-8"))["cli_version"] == cli, name
