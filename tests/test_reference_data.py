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
    commits = set()
    for name, record in SOURCES.items():
        if name.startswith("cli-"):
            assert record["version"] == cli, name
            # The commit of the CLI's source each copy was read from (the
            # release commit of that version).
            assert re.fullmatch(r"[0-9a-f]{40}", record.get("commit", "")), name
            commits.add(record["commit"])
    assert len(commits) == 1, f"the CLI copies were read from several commits: {commits}"
    tree = json.loads((DATA / "cli-commands.json").read_text(encoding="utf-8"))
    assert tree["source"]["version"] == cli
    for name in ("cli-state.json", "cli-verdicts.json", "cli-plans.json"):
        assert json.loads((DATA / name).read_text(encoding="utf-8"))["cli_version"] == cli, name


def test_the_cli_version_is_pinned_once() -> None:
    """The CLI's image takes its tag from tools.railway_cli: one edit moves both."""
    pins = (ROOT / "includes" / "pins.jinja").read_text(encoding="utf-8")
    assert pins.count(pinned_cli()) == 1
    assert '"ghcr.io/railwayapp/cli:" ~ tools.railway_cli' in pins


# `railway config plan --json` prints RunnerResponse (src/commands/config/
# runner.rs): serde writes every field a struct declares, null when empty,
# and nothing else. cli-plans.json records those structs' fields as read from
# the source at its commit; every recorded output must have exactly them, so
# a hand-edited plan with a field the CLI drops (a change's `address` or
# `path`, say) fails here instead of passing a check that real plans defeat.
PLANS = json.loads((DATA / "cli-plans.json").read_text(encoding="utf-8"))
RUST_TYPE = re.compile(r"^(?:Option|Vec)<(?P<inner>.+)>$")


def shape_errors(value: object, rust_type: str, structs: dict, where: str) -> list[str]:
    """Where `value` has a field its Rust type does not serialise, or lacks one it does."""
    if value is None and rust_type.startswith("Option<"):
        return []
    if m := RUST_TYPE.match(rust_type):
        if rust_type.startswith("Vec<"):
            if not isinstance(value, list):
                return [f"{where}: not a list"]
            return [
                error
                for i, item in enumerate(value)
                for error in shape_errors(item, m["inner"], structs, f"{where}[{i}]")
            ]
        return shape_errors(value, m["inner"], structs, where)
    if rust_type not in structs:  # String, bool, Value, Map<String, Value>: any content
        return []
    if not isinstance(value, dict):
        return [f"{where}: not an object ({rust_type})"]
    fields = structs[rust_type]["fields"]
    errors = [
        f"{where}.{key}: {rust_type} has no such field" for key in sorted(value.keys() - fields)
    ]
    errors += [
        f"{where}.{key}: missing ({rust_type} prints it)" for key in sorted(fields - value.keys())
    ]
    for key in sorted(value.keys() & fields):
        errors += shape_errors(value[key], fields[key], structs, f"{where}.{key}")
    return errors


def test_recorded_plans_have_the_fields_the_cli_prints() -> None:
    assert PLANS["cli_commit"] == SOURCES["cli-plans.json"]["commit"]
    structs = PLANS["structs"]
    assert set(structs["Change"]["fields"]) == {"summary", "severity", "kind", "details"}
    for name, plan in PLANS["plans"].items():
        assert shape_errors(plan["output"], "RunnerResponse", structs, name) == []


def test_the_shape_check_refuses_a_field_the_cli_drops() -> None:
    structs = PLANS["structs"]
    plan = json.loads(json.dumps(PLANS["plans"]["postgres-ssl-17-to-18"]["output"]))
    plan["changeSet"]["changes"][0]["address"] = "database.Postgres"
    plan["desiredGraph"]["resources"][0]["image"] = "postgres:18"
    del plan["diff"]
    assert set(shape_errors(plan, "RunnerResponse", structs, "plan")) == {
        "plan.diff: missing (RunnerResponse prints it)",
        "plan.changeSet.changes[0].address: Change has no such field",
        "plan.desiredGraph.resources[0].image: DesiredResource has no such field",
    }
