"""`.env.example` names exactly the variables the bot's settings read.

The variables are not listed here: they are read from the rendered settings
module. For Python, ``config.py`` with ``ast`` (each field of ``class
Settings`` is read from its name upper-cased, or from an explicit
``alias``/``validation_alias`` string, after ``env_prefix``); for Node,
the keys of the zod schema in ``src/config.ts``. A setting added to either
bot without a line in ``.env.example`` (or the reverse) fails, and both
runtimes' files list the same names, so both bots read the same variables.

Convention of ``.env.example`` (stated at its top): ``NAME=value`` lines are
needed locally, ``# NAME=value`` lines are optional or set by Railway; both
count as "listed". Only ``database`` and ``redis`` change which variables
exist, so every combination must render one of the files tested per
(database, redis) pair.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

import matrix

BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
ASSIGNED = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
COMMENTED = re.compile(r"^#\s?([A-Z][A-Z0-9_]*)=(.*)$")


def settings_module(tree: Path) -> Path:
    """The bot's settings: src/<package>/config.py (Python) or src/config.ts (Node)."""
    if (tree / "src" / "config.ts").is_file():
        return tree / "src" / "config.ts"
    found = list((tree / "src").glob("*/config.py"))
    assert len(found) == 1, f"expected one src/<package>/config.py in {tree}, found {found}"
    return found[0]


def _literal_kwargs(call: ast.Call) -> dict[str, object]:
    out: dict[str, object] = {}
    for kw in call.keywords:
        if kw.arg is not None:
            try:
                out[kw.arg] = ast.literal_eval(kw.value)
            except ValueError:
                out[kw.arg] = None
    return out


def schema_names(config: Path) -> set[str]:
    """The variables the Node bot's settings schema reads (the keys of `z.object`)."""
    text = config.read_text(encoding="utf-8")
    body = text.split("const schema = z.object({\n", 1)[1].split("\n});\n", 1)[0]
    return set(re.findall(r"^  ([A-Z][A-Z0-9_]*): ", body, re.M))


def settings_env_names(config: Path) -> set[str]:
    """The environment variable names the settings module ``config`` reads."""
    if config.suffix == ".ts":
        return schema_names(config)
    module = ast.parse(config.read_text(encoding="utf-8"))
    classes = [n for n in module.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    assert len(classes) == 1, f"no single `class Settings` in {config}"
    prefix = ""
    names: set[str] = set()
    for node in classes[0].body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "model_config" for t in targets):
                if isinstance(node.value, ast.Call):
                    prefix = str(_literal_kwargs(node.value).get("env_prefix") or "")
                continue
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        field = node.target.id
        if field.startswith("_") or "ClassVar" in ast.unparse(node.annotation):
            continue
        alias = None
        if isinstance(node.value, ast.Call) and ast.unparse(node.value.func).endswith("Field"):
            kwargs = _literal_kwargs(node.value)
            alias = kwargs.get("validation_alias") or kwargs.get("alias")
            assert alias is None or isinstance(alias, str), (
                f"{config}: {field} has a non-string alias; teach this test to read it"
            )
        names.add(alias if isinstance(alias, str) else f"{prefix}{field}".upper())
    return names


def env_example_names(path: Path) -> tuple[set[str], set[str]]:
    """(names set on a NAME= line, names shown as "# NAME=" lines)."""
    assigned, commented = set(), set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := ASSIGNED.match(line):
            assigned.add(m.group(1))
        elif m := COMMENTED.match(line):
            commented.add(m.group(1))
    return assigned, commented


Key = tuple[str, str, bool, bool]


def _key(answers: dict) -> Key:
    """(runtime, database, redis, private backups): all that changes the settings."""
    private = matrix.private_backups(answers)
    return (answers["runtime"], answers["database"], answers["redis"], private)


def _pairs(rendered_matrix) -> dict[Key, list[Path]]:
    groups: dict[Key, list[Path]] = defaultdict(list)
    for combo in matrix.combinations():
        groups[_key(combo.answers)].append(rendered_matrix.tree(combo))
    return groups


PAIRS = sorted({_key(c.answers) for c in matrix.combinations()})
IDS = [f"{rt}-{d}-{'redis' if r else 'no-redis'}{'-backups' if b else ''}" for rt, d, r, b in PAIRS]


def test_every_combination_renders_its_pairs_file(rendered_matrix):
    """Nothing but database, redis and private backups changes .env.example or the settings.

    The runtime changes the settings module and the commands .env.example's
    comments name, never the variables: both bots read the same names.
    """
    names: dict[tuple[str, bool, bool], set[frozenset[str]]] = defaultdict(set)
    for (runtime, *pair), trees in _pairs(rendered_matrix).items():
        envs = {(t / ".env.example").read_text(encoding="utf-8") for t in trees}
        configs = {settings_module(t).read_text(encoding="utf-8") for t in trees}
        assert len(envs) == 1, f"{runtime}-{pair}: {len(envs)} different .env.example files"
        assert len(configs) == 1, f"{runtime}-{pair}: {len(configs)} different settings modules"
        assigned, commented = env_example_names(trees[0] / ".env.example")
        names[tuple(pair)].add(frozenset(assigned | commented))
    for pair, listed in names.items():
        assert len(listed) == 1, f"{pair}: the runtimes' .env.example files list other variables"


@pytest.mark.parametrize(("runtime", "database", "redis", "backups"), PAIRS, ids=IDS)
def test_env_example_lists_exactly_the_settings(rendered_matrix, runtime, database, redis, backups):
    tree = _pairs(rendered_matrix)[(runtime, database, redis, backups)][0]
    expected = settings_env_names(settings_module(tree))
    assigned, commented = env_example_names(tree / ".env.example")
    assert not assigned & commented, f"listed twice: {sorted(assigned & commented)}"
    listed = assigned | commented
    assert listed == expected, (
        f"missing from .env.example: {sorted(expected - listed)}; "
        f"not read by Settings: {sorted(listed - expected)}"
    )
    # Sanity of the parser itself: these exist in every bot.
    assert {"DISCORD_TOKEN", "PORT", "LOG_LEVEL"} <= expected
    assert ("DATABASE_URL" in expected) == (database != "none")
    assert ("REDIS_URL" in expected) == redis
    assert ("BACKUP_S3_BUCKET" in expected) == backups


@pytest.mark.parametrize(("runtime", "database", "redis", "backups"), PAIRS, ids=IDS)
def test_env_example_holds_no_secret_and_lints(rendered_matrix, runtime, database, redis, backups):
    tree = _pairs(rendered_matrix)[(runtime, database, redis, backups)][0]
    path = tree / ".env.example"
    text = path.read_text(encoding="utf-8")
    values = dict(
        ASSIGNED.match(line).groups() for line in text.splitlines() if ASSIGNED.match(line)
    )
    # The token is a blank to fill in; database URLs only point at compose's
    # local-only services.
    assert values.get("DISCORD_TOKEN") == ""
    for name, value in values.items():
        if value:
            assert re.search(
                r"@(localhost|127\.0\.0\.1)[:/]|//(localhost|127\.0\.0\.1)[:/]", value
            ), f"{name}={value} does not point at a local service"
    # Each variable is documented: a comment right above it (or above its group).
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if ASSIGNED.match(line) or COMMENTED.match(line):
            assert i > 0 and lines[i - 1].startswith("#"), f"{line!r} has no comment above it"
    # SECRET is spelled out for the variables that hold credentials.
    for secret in {"DISCORD_TOKEN", "DATABASE_URL"} & set(values):
        block = "\n".join(lines[max(0, lines.index(f"{secret}={values[secret]}") - 4) :])
        assert "SECRET" in block.split(f"{secret}=")[0], f"{secret} is not marked SECRET"
    result = subprocess.run(
        [str(BIN / "dotenv-linter"), "lint", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


#: "(5 to 3600)" in the comment above a variable: the values it accepts.
STATED_RANGE = re.compile(r"\((\d+) to (\d+)\)")


def stated_ranges(path: Path) -> dict[str, tuple[float, float]]:
    """Each variable's range as .env.example's comment block above it states it."""
    ranges: dict[str, tuple[float, float]] = {}
    comment: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := ASSIGNED.match(line) or COMMENTED.match(line):
            if found := STATED_RANGE.findall(" ".join(comment)):
                assert len(found) == 1, f"{m[1]}: several ranges stated: {found}"
                ranges[m[1]] = (float(found[0][0]), float(found[0][1]))
            comment = []
        elif line.startswith("#"):
            comment.append(line)
        else:
            comment = []
    return ranges


def accepted_ranges(config: Path) -> dict[str, tuple[float, float]]:
    """Each variable's inclusive bounds as the settings module checks them."""
    text = config.read_text(encoding="utf-8")
    if config.suffix == ".ts":
        found = re.findall(
            r"^  ([A-Z][A-Z0-9_]*): (?:number|integer)Between\((\d+), (\d+)", text, re.M
        )
        return {name: (float(low), float(high)) for name, low, high in found}
    ranges = {}
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func) == "Field"
        ):
            kwargs = _literal_kwargs(node.value)
            if "ge" in kwargs and "le" in kwargs:
                ranges[node.target.id.upper()] = (float(kwargs["ge"]), float(kwargs["le"]))
    return ranges


@pytest.mark.parametrize(("runtime", "database", "redis", "backups"), PAIRS, ids=IDS)
def test_env_example_states_the_ranges_the_settings_accept(
    rendered_matrix, runtime, database, redis, backups
):
    tree = _pairs(rendered_matrix)[(runtime, database, redis, backups)][0]
    stated = stated_ranges(tree / ".env.example")
    accepted = accepted_ranges(settings_module(tree))
    # The parsers read something: every bot states and checks these two.
    assert {"GATEWAY_OUTAGE_LIMIT_SECONDS", "HEARTBEAT_INTERVAL_SECONDS"} <= set(stated)
    assert {"GATEWAY_OUTAGE_LIMIT_SECONDS", "HEARTBEAT_INTERVAL_SECONDS"} <= set(accepted)
    wrong = {
        name: (low_high, accepted.get(name))
        for name, low_high in stated.items()
        if accepted.get(name) != low_high
    }
    assert not wrong, f".env.example states (range, what the settings accept): {wrong}"


def test_a_wrong_stated_range_is_caught(tmp_path: Path) -> None:
    env = tmp_path / ".env.example"
    env.write_text("# Seconds (5 to 3600).\n# GATEWAY_OUTAGE_LIMIT_SECONDS=60\n# PORT=8080\n")
    assert stated_ranges(env) == {"GATEWAY_OUTAGE_LIMIT_SECONDS": (5.0, 3600.0)}
    config = tmp_path / "config.ts"
    config.write_text(
        '  GATEWAY_OUTAGE_LIMIT_SECONDS: numberBetween(1, 3600, "a number of seconds"),\n'
    )
    assert accepted_ranges(config) == {"GATEWAY_OUTAGE_LIMIT_SECONDS": (1.0, 3600.0)}
