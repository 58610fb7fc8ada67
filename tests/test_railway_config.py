"""The Railway service settings, in whichever form a combination carries them.

- The file manifest other tests rely on (which config/build files exist).
- One source of truth: combinations that differ only in railway_config must
  carry the same build/deploy settings in railway.json, railway.toml, the
  graph of .railway/railway.py and the DEPLOYMENT.md table; and each
  combination's DEPLOYMENT.md tables must match its own file.
- The settings a gateway bot needs (FACTS.md section 2), checked on values,
  and validated against the reconstructed railway.schema.json.
- .railway/railway.py is imported with the real railway-sdk and evaluated,
  in-process and through the Railway CLI's own six-step inline script in a
  `python -c` subprocess (IAC.md sections 1 and 7), for every environment;
  the graph is checked for what the CLI would reject or delete.
- With backup_path=railway: PostgreSQL's backup cron service (the bot's
  source, a Dockerfile build that installs pg_dump 18, a daily schedule, a
  bounded restart policy, no healthcheck, every hand-set variable kept by
  preserve() and never the age identity), or the SQLite bot's own backup
  variables.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import jsonschema
import pytest
from test_env_example import config_py, settings_env_names

import linters
import matrix

DATA = Path(__file__).resolve().parent / "data" / "railway"
# Railway's Config-as-Code schema: no generated file uses that format any more,
# but its keys and types are still the service settings' own (the IaC file
# sends the same build/deploy objects).
SCHEMA = json.loads((DATA / "railway.schema.json").read_text(encoding="utf-8"))
BUILDERS = {"dockerfile": "DOCKERFILE", "railpack": "RAILPACK", "nixpacks": "NIXPACKS"}
RETIRED = "2026-12-01"  # Railway stopped reading railway.json and railway.toml

# The CLI's evaluation of a .py file (IAC.md section 1, steps 1-6), as one
# `python3 -c` script taking the file's path; run from the project root.
CLI_EVAL = """\
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("railway_iac_user", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
partial = getattr(module, "PARTIAL", getattr(module, "Partial", getattr(module, "partial", None)))
candidate = getattr(module, "main", getattr(module, "Railway", getattr(module, "default", None)))
project = candidate() if callable(candidate) else candidate
if hasattr(project, "to_graph"):
    project = project.to_graph()
print(json.dumps({"partial": partial, "project": project}, default=str))
"""
PARTIAL_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,64}$")
COMBOS = matrix.combinations()

# The variables of the backup commands (backup_path=railway), by the names
# the bot's backup code reads: value, or None for one set by hand.
BACKUP_SECRETS = {
    "BACKUP_S3_ENDPOINT",
    "BACKUP_S3_REGION",
    "BACKUP_S3_BUCKET",
    "BACKUP_S3_ACCESS_KEY_ID",
    "BACKUP_S3_SECRET_ACCESS_KEY",
    "BACKUP_S3_PREFIX",
    "BACKUP_AGE_RECIPIENTS",
    "BACKUP_HEARTBEAT_URL",
}
BACKUP_DEFAULTS = {
    "BACKUP_RETENTION_DAYS": "30",
    "BACKUP_KEEP_MIN": "7",
    "BACKUP_MAX_AGE_HOURS": "26",
}
# Never on a Railway service: the identity decrypts every backup.
BACKUP_NEVER_ON_RAILWAY = {"BACKUP_AGE_IDENTITY", "BACKUP_RESTORE_KEY"}
CRON = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* \*$")


def private_backups(combo: matrix.Combination) -> bool:
    a = combo.answers
    return a["database"] != "none" and bool(a.get("backups")) and a.get("backup_path") == "railway"


def backup_names(combo: matrix.Combination) -> set[str]:
    """The backup variables a combination's bot service carries (SQLite only)."""
    if not private_backups(combo) or combo.answers["database"] != "sqlite":
        return set()
    return BACKUP_SECRETS | set(BACKUP_DEFAULTS) | {"BACKUP_INTERVAL_HOURS"}


def ids(combos):
    return [c.id for c in combos]


def package(combo: matrix.Combination) -> str:
    return matrix.complete({**matrix.REQUIRED_ANSWERS, **combo.answers})["package_name"]


def environments(combo: matrix.Combination) -> list[str]:
    return ["production", "staging"] if combo.answers["staging"] else ["production"]


# ------------------------------------------------------------- extraction --
def display(value: object) -> str:
    """A value as the DEPLOYMENT.md table shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(map(str, value))
    return str(value)


TABLE_ROW = re.compile(r"^\| `(build|deploy)\.(\w+)` \| `([^`]*)` \|")
VARIABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| (.*)$")


def doc_settings(tree: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"build": {}, "deploy": {}}
    for line in (tree / "DEPLOYMENT.md").read_text(encoding="utf-8").splitlines():
        if m := TABLE_ROW.match(line):
            out[m.group(1)][m.group(2)] = m.group(3)
    return out


def doc_variables(tree: Path, envs: list[str]) -> dict[str, dict[str, str]]:
    """Variable -> environment -> cell text (without backticks), from the variables table."""
    text = (tree / "DEPLOYMENT.md").read_text(encoding="utf-8")
    section = text.split("## Service variables", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        if m := VARIABLE_ROW.match(line):
            cells = [c.strip().strip("`") for c in m.group(2).split(" | ")]
            out[m.group(1)] = dict(zip(envs, cells, strict=False))
    return out


def load_module(path: Path):
    name = "railway_iac_" + hashlib.blake2b(str(path).encode(), digest_size=8).hexdigest()
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def service_node(graph: dict, slug: str) -> dict:
    nodes = [r for r in graph["resources"] if r["address"] == f"service.{slug}"]
    assert len(nodes) == 1, (
        f"no single service.{slug} in {[r['address'] for r in graph['resources']]}"
    )
    return nodes[0]


def iac_graph(tree: Path, env: str) -> dict:
    from railway_sdk import create_railway_context

    module = load_module(tree / ".railway" / "railway.py")
    return module.main(create_railway_context(environment=env)).to_graph()


def carried_settings(combo: matrix.Combination, tree: Path) -> dict | None:
    """build/deploy of the file this combination carries (None: railway_config=none)."""
    kind = combo.answers["railway_config"]
    if kind == "iac":
        data = service_node(iac_graph(tree, "production"), slug_of(tree))
    else:
        return None
    return {"build": data["build"], "deploy": data["deploy"]}


def slug_of(tree: Path) -> str:
    answers = (tree / ".copier-answers.yml").read_text(encoding="utf-8")
    return re.search(r"^project_slug: (.+)$", answers, re.M).group(1).strip("'\"")


# --------------------------------------------------------------- manifest --
@pytest.mark.parametrize("combo", COMBOS, ids=ids(COMBOS))
def test_file_manifest(rendered_matrix, combo):
    tree = rendered_matrix.tree(combo)
    a = combo.answers
    expected = {
        "Dockerfile": a["builder"] == "dockerfile",
        "docker/Dockerfile": a["builder"] != "dockerfile",
        "railpack.json": a["builder"] == "railpack",
        "nixpacks.toml": a["builder"] == "nixpacks",
        ".railway/railway.py": a["railway_config"] == "iac",
        # Config as Code, which Railway no longer reads: never generated.
        "railway.json": False,
        "railway.toml": False,
        "compose.yaml": True,
        ".dockerignore": True,
        ".env.example": True,
        "DEPLOYMENT.md": True,
    }
    actual = {path: (tree / path).is_file() for path in expected}
    assert actual == expected
    # Railway reads at most one config file per service, and .railway/ holds
    # nothing else (the CLI refuses more than one railway.{ts,py,go}).
    assert not (tree / ".railway").exists() or sorted(os.listdir(tree / ".railway")) == [
        "railway.py"
    ]


# ----------------------------------------------------- settings invariants --
@pytest.mark.parametrize("combo", COMBOS, ids=ids(COMBOS))
def test_settings_fit_a_gateway_bot(rendered_matrix, combo):
    tree = rendered_matrix.tree(combo)
    a = combo.answers
    settings = carried_settings(combo, tree)
    if settings is None:  # the dashboard table is the only carrier
        settings = doc_settings(tree)
        coerce = str
    else:
        coerce = display
        # Only keys Railway knows, with values of the right types.
        jsonschema.validate({"$schema": "x", **settings}, SCHEMA)
    build, deploy = settings["build"], settings["deploy"]
    pkg = package(combo)

    assert build["builder"] == BUILDERS[a["builder"]]
    assert ("dockerfilePath" in build) == (a["builder"] == "dockerfile")
    if a["builder"] == "dockerfile":
        assert build["dockerfilePath"] == "Dockerfile"

    argv = shlex.split(coerce(deploy["startCommand"]))
    if a["database"] == "sqlite":
        # Pre-deploy has no volume: migrate, then exec so Python becomes PID 1.
        assert argv[:2] == ["sh", "-c"] and len(argv) == 3
        assert argv[2] == f"python -m {pkg} migrate && exec python -m {pkg}"
    else:
        assert argv == ["python", "-m", pkg]
    if a["database"] == "postgres":
        assert coerce(deploy["preDeployCommand"]) == display([f"python -m {pkg} migrate"])
    else:
        assert "preDeployCommand" not in deploy

    assert coerce(deploy["healthcheckPath"]) == "/health"
    assert 30 <= int(deploy["healthcheckTimeout"]) <= 300
    assert coerce(deploy["restartPolicyType"]) == "ON_FAILURE"
    assert 1 <= int(deploy["restartPolicyMaxRetries"]) <= 10
    # The bot shuts down within 10 s of SIGTERM; FACTS.md: 10-30.
    assert 10 < int(deploy["drainingSeconds"]) <= 30
    assert int(deploy["overlapSeconds"]) == 0
    assert coerce(deploy["sleepApplication"]) in ("false", False)
    for forbidden in ("cronSchedule", "numReplicas", "multiRegionConfig", "region"):
        assert forbidden not in deploy


# ------------------------------------------------------ one source of truth --
def _group_key(combo: matrix.Combination) -> tuple:
    return tuple((k, v) for k, v in combo.data if k != "railway_config")


@pytest.fixture(scope="module")
def carried_by_combo(rendered_matrix):
    return {combo.id: carried_settings(combo, rendered_matrix.tree(combo)) for combo in COMBOS}


@pytest.mark.parametrize("combo", COMBOS, ids=ids(COMBOS))
def test_runbook_table_matches_the_file(rendered_matrix, carried_by_combo, combo):
    tree = rendered_matrix.tree(combo)
    table = doc_settings(tree)
    settings = carried_by_combo[combo.id]
    if settings is None:
        # railway_config=none: compare with the IaC file of the same answers.
        twin = next(
            (
                c
                for c in COMBOS
                if _group_key(c) == _group_key(combo) and c.answers["railway_config"] == "iac"
            ),
            None,
        )
        assert twin is not None
        settings = carried_by_combo[twin.id]
    assert table == {
        section: {k: display(v) for k, v in settings[section].items()}
        for section in ("build", "deploy")
    }


@pytest.mark.parametrize("combo", COMBOS, ids=ids(COMBOS))
def test_runbook_variables_are_the_bots(rendered_matrix, combo):
    """Every service variable is one the bot reads (or a Railway platform variable)."""
    tree = rendered_matrix.tree(combo)
    envs = environments(combo)
    variables = doc_variables(tree, envs)
    read = settings_env_names(config_py(tree))
    platform = {"RAILWAY_RUN_UID"}  # read by Railway, not by the bot
    # The backup commands' variables: their names are the backup contract's.
    assert set(variables) - platform - backup_names(combo) <= read
    assert {n for n in variables if n.startswith("BACKUP_")} == backup_names(combo)
    assert "DISCORD_TOKEN" in variables and "PORT" not in variables
    assert ("DATABASE_URL" in variables) == (combo.answers["database"] == "postgres")
    assert ("REDIS_URL" in variables) == combo.answers["redis"]
    assert ("RAILWAY_RUN_UID" in variables) == (
        combo.answers["database"] == "sqlite" and combo.answers["builder"] == "dockerfile"
    )
    if combo.answers["database"] == "postgres":
        assert set(variables["DATABASE_URL"].values()) == {"${{Postgres.DATABASE_URL}}"}
    if combo.answers["redis"]:
        assert set(variables["REDIS_URL"].values()) == {"${{Redis.REDIS_URL}}"}
    if combo.answers["railway_config"] == "iac":
        for env in envs:
            node = service_node(iac_graph(tree, env), slug_of(tree))
            assert set(node["variables"]) == set(variables)
            for name, var in node["variables"].items():
                cell = variables[name][env]
                if var["type"] == "literal":
                    assert cell == var["value"], name
                elif var["type"] == "reference":
                    service = var["resource"].split(".", 1)[1]
                    assert cell == f"${{{{{service}.{var['output']}}}}}", name
                else:
                    assert var["type"] == "preserve" and "secret" in cell, name


# ------------------------------------------------------------------- IaC --
IAC = [c for c in COMBOS if c.answers["railway_config"] == "iac"]


@cache
def _cli_eval(path: str, cwd: str, env_name: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "IAC_ENVIRONMENT"}
    if env_name is not None:
        env["IAC_ENVIRONMENT"] = env_name
    return subprocess.run(
        [sys.executable, "-c", CLI_EVAL, path],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_eval(tree: Path, env_name: str | None) -> subprocess.CompletedProcess:
    # Files with the same bytes evaluate the same: run each distinct file once.
    path = tree / ".railway" / "railway.py"
    digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    first = _first_path.setdefault(digest, (str(path), str(tree)))
    return _cli_eval(*first, env_name)


_first_path: dict[str, tuple[str, str]] = {}


def _check_graph(graph: dict, combo: matrix.Combination, tree: Path, env: str) -> None:
    a = combo.answers
    slug = slug_of(tree)
    by_address = {r["address"]: r for r in graph["resources"]}
    assert len(by_address) == len(graph["resources"]), "duplicate addresses"
    expected = {f"service.{slug}"}
    if a["database"] == "postgres":
        expected.add("database.Postgres")
    if a["redis"]:
        expected.add("database.Redis")
    if a["database"] == "sqlite":
        expected.add(f"volume.{slug}-data")
    if private_backups(combo) and a["database"] == "postgres":
        expected.add(f"service.{slug}-backup")
    assert set(by_address) == expected
    node = by_address[f"service.{slug}"]
    if f"service.{slug}-backup" in by_address:
        _check_backup_service(by_address[f"service.{slug}-backup"], node, combo, tree)

    if a["deploy_mode"] == "autodeploy":
        branch = {"production": "main", "staging": "develop"}[env]
        assert node["source"] == {
            "type": "github",
            "repo": matrix.REQUIRED_ANSWERS["github_repository"],
            "branch": branch,
            "checkSuites": True,
        }
    else:
        # GitHub Actions deploys with `railway up`: a connected repository
        # would deploy every push a second time, untested.
        assert "source" not in node and node["kind"] == "empty"

    variables = node["variables"]
    assert variables["DISCORD_TOKEN"] == {"type": "preserve"}
    for name, var in variables.items():
        assert var["type"] in {"literal", "reference", "preserve"}, (name, var)
        if var["type"] == "literal":
            assert isinstance(var["value"], str), name
        if var["type"] == "reference":
            # The CLI rejects an edge to an undeclared resource.
            assert var["resource"] in by_address, name
    assert variables["LOG_LEVEL"]["value"] == ("DEBUG" if env == "staging" else "INFO")
    read = settings_env_names(config_py(tree))
    assert set(variables) - {"RAILWAY_RUN_UID"} - backup_names(combo) <= read
    names = backup_names(combo)
    assert {n for n in variables if n.startswith("BACKUP_")} == names
    if names:
        # The SQLite bot backs its own volume up: every value set by hand is
        # kept by preserve() (a plan deletes undeclared variables), the
        # defaults are written out.
        for name in BACKUP_SECRETS:
            assert variables[name] == {"type": "preserve"}, name
        for name, value in {**BACKUP_DEFAULTS, "BACKUP_INTERVAL_HOURS": "24"}.items():
            assert variables[name] == {"type": "literal", "value": value}, name

    attachments = node.get("volumeAttachments", {})
    if a["database"] == "sqlite":
        assert list(attachments.values()) == [
            {"volume": f"volume.{slug}-data", "mountPath": "/data", "volumeConfig": {}}
        ]
    else:
        assert not attachments


def _check_backup_service(node: dict, bot: dict, combo: matrix.Combination, tree: Path) -> None:
    """The PostgreSQL backup cron service: the bot's code and image, run once a day."""
    a = combo.answers
    pkg = package(combo)
    # Same source as the bot: it deploys with it, from the same branch.
    assert node.get("source") == bot.get("source") and node["kind"] == bot["kind"]
    # Only the Dockerfile installs pg_dump 18; Railpack and Nixpacks builds of
    # the bot cannot, so this service builds docker/Dockerfile then.
    assert node["build"] == {
        "builder": "DOCKERFILE",
        "dockerfilePath": "Dockerfile" if a["builder"] == "dockerfile" else "docker/Dockerfile",
    }
    assert (tree / node["build"]["dockerfilePath"]).is_file()
    dockerfile = (tree / node["build"]["dockerfilePath"]).read_text(encoding="utf-8")
    assert "postgresql-client-18" in dockerfile
    deploy = node["deploy"]
    jsonschema.validate({"$schema": "x", "build": node["build"], "deploy": deploy}, SCHEMA)
    assert shlex.split(deploy["startCommand"]) == ["python", "-m", pkg, "backup"]
    # Daily, at a fixed minute off the full hour (Railway's cron is UTC).
    match = CRON.match(deploy["cronSchedule"])
    assert match, deploy["cronSchedule"]
    minute, hour = map(int, match.groups())
    assert 0 < minute < 60 and 0 <= hour < 24
    # A cron run must exit: nothing to health-check, never asleep or
    # restarted forever, and no migration of its own.
    assert deploy["restartPolicyType"] in {"NEVER", "ON_FAILURE"}
    if deploy["restartPolicyType"] == "ON_FAILURE":
        assert 1 <= deploy["restartPolicyMaxRetries"] <= 3
    for forbidden in (
        "healthcheckPath",
        "preDeployCommand",
        "sleepApplication",
        "numReplicas",
        "multiRegionConfig",
    ):
        assert forbidden not in deploy, forbidden
    variables = node["variables"]
    assert set(variables) == BACKUP_SECRETS | set(BACKUP_DEFAULTS) | {"BACKUP_DATABASE_URL"}
    # The read-only role's URL is set by hand, never a reference to the
    # owner's DATABASE_URL.
    for name in BACKUP_SECRETS | {"BACKUP_DATABASE_URL"}:
        assert variables[name] == {"type": "preserve"}, name
    for name, value in BACKUP_DEFAULTS.items():
        assert variables[name] == {"type": "literal", "value": value}, name
    assert not set(variables) & BACKUP_NEVER_ON_RAILWAY
    assert not set(bot["variables"]) & BACKUP_NEVER_ON_RAILWAY
    assert not node.get("volumeAttachments")


@pytest.mark.parametrize("combo", IAC, ids=ids(IAC))
def test_iac_module_follows_the_cli_rules(rendered_matrix, combo):
    tree = rendered_matrix.tree(combo)
    module = load_module(tree / ".railway" / "railway.py")
    # The CLI finds the function by this name only and calls it bare.
    assert callable(module.main)
    assert module.main.__name__ == "main"
    assert PARTIAL_NAME.match(module.PARTIAL) and slug_of(tree) == module.PARTIAL
    # Names the CLI would take for the partial or the entry point.
    for name in ("partial", "Partial", "Railway", "default"):
        assert not hasattr(module, name), name
    source = (tree / ".railway" / "railway.py").read_text(encoding="utf-8")
    assert "@define_railway\ndef main(ctx" in source
    assert "print(" not in source
    assert "from railway_sdk import" in source
    from railway_sdk import create_railway_context

    for env in environments(combo):
        graph = module.main(create_railway_context(environment=env)).to_graph()
        _check_graph(graph, combo, tree, env)
        if combo.answers["staging"]:
            # A plain mapping as context, as the old runner sent it.
            assert module.main({"environmentName": env}).to_graph() == graph


@pytest.mark.parametrize("combo", IAC, ids=ids(IAC))
def test_iac_evaluates_like_the_railway_cli(rendered_matrix, combo):
    tree = rendered_matrix.tree(combo)
    for env in environments(combo):
        result = cli_eval(tree, env)
        assert result.returncode == 0, result.stderr
        payload = json.loads(result.stdout)  # all of stdout is one JSON document
        assert payload["partial"] == slug_of(tree)
        assert isinstance(payload["project"], dict)
        assert isinstance(payload["project"].get("resources"), list)
        assert payload["project"]["resources"], "an empty project plans the deletion of everything"
        in_process = json.loads(json.dumps(iac_graph(tree, env), default=str))
        assert payload["project"] == in_process
        _check_graph(copy.deepcopy(payload["project"]), combo, tree, env)
    unset = cli_eval(tree, None)
    if combo.answers["staging"]:
        # No environment named: refuse, never guess production.
        assert unset.returncode != 0 and "IAC_ENVIRONMENT" in unset.stderr
        assert unset.stdout == ""
    else:
        # One fixed configuration: the CLI's bare call is all it needs.
        assert unset.returncode == 0, unset.stderr
        assert (
            json.loads(unset.stdout)["project"]
            == json.loads(cli_eval(tree, "production").stdout)["project"]
        )


# --------------------------------------------------- builders and legacy --
@pytest.mark.parametrize("combo", COMBOS, ids=ids(COMBOS))
def test_builder_files_agree(rendered_matrix, carried_by_combo, combo):
    tree = rendered_matrix.tree(combo)
    a = combo.answers
    settings = carried_by_combo[combo.id]
    start = (
        doc_settings(tree)["deploy"]["startCommand"]
        if settings is None
        else settings["deploy"]["startCommand"]
    )
    python = matrix.complete({**matrix.REQUIRED_ANSWERS, **a})["python_version"]
    if a["builder"] == "railpack":
        data = json.loads((tree / "railpack.json").read_text(encoding="utf-8"))
        assert data["deploy"]["startCommand"] == start
        assert data["packages"]["python"] == python
    if a["builder"] == "nixpacks":
        text = (tree / "nixpacks.toml").read_text(encoding="utf-8")
        data = tomllib.loads(text)
        assert data["start"]["cmd"] == start
        assert data["variables"]["NIXPACKS_PYTHON_VERSION"] == python
        assert "LEGACY" in text and "deprecated" in text
    compose = (tree / "compose.yaml").read_text(encoding="utf-8")
    dockerfile = "Dockerfile" if a["builder"] == "dockerfile" else "docker/Dockerfile"
    assert f"dockerfile: {dockerfile}\n" in compose


@pytest.mark.parametrize("combo", COMBOS, ids=ids(COMBOS))
def test_config_file_choice_is_documented_truthfully(rendered_matrix, combo):
    """Nothing promises Config as Code after its retirement; IaC renders say how to move."""
    tree = rendered_matrix.tree(combo)
    kind = combo.answers["railway_config"]
    doc = (tree / "DEPLOYMENT.md").read_text(encoding="utf-8")
    for path in tree.rglob("*"):
        if path.is_file() and path.suffix in {".md", ".py", ".toml", ".yml", ".yaml", ".json"}:
            text = path.read_text(encoding="utf-8")
            assert f"until {RETIRED}" not in text and "stops reading" not in text, path
    if kind == "iac":
        assert "PARTIAL" in doc and "whole-project" in doc
        assert ("IAC_ENVIRONMENT" in doc) == combo.answers["staging"]
        moving = doc.split("### A service that used railway.json or railway.toml", 1)[1]
        moving = moving.split("\n### ", 1)[0]
        assert f"on {RETIRED}" in moving and "Config-as-code" in moving
        assert "railway config plan" in moving and "railway config apply" in moving
    if kind == "none":
        for variable in (
            "RAILWAY_DEPLOYMENT_DRAINING_SECONDS",
            "RAILWAY_DEPLOYMENT_OVERLAP_SECONDS",
            "RAILWAY_HEALTHCHECK_TIMEOUT_SEC",
        ):
            assert f"'{variable}=" in doc, variable


# ------------------------------------------------------ railway commands --
CLI = json.loads((DATA / "cli-commands.json").read_text(encoding="utf-8"))
INLINE = re.compile(r"`((?:[A-Z_]+=\S+ )*railway [^`]+)`")


def railway_lines(text: str) -> list[str]:
    """Every `railway ...` command a reader may run: fenced lines and code spans."""
    lines, fenced = [], False
    # A command continued with a trailing backslash is one line to the shell.
    for line in text.replace("\\\n", " ").splitlines():
        stripped = line.strip().lstrip("#").strip()
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if fenced and re.match(r"^([A-Z_]+=\S+ )*railway ", line.strip()):
            lines.append(line.strip())
        for span in INLINE.findall(stripped if not fenced else ""):
            # Prose shorthands ("railway config plan|apply", "railway variables
            # set"-style mentions without arguments are still checked).
            if "|" not in span and "..." not in span:
                lines.append(span)
    return lines


def _find(table: dict, word: str) -> str | None:
    for name, spec in table.items():
        if (
            word == name
            or word in spec.get("aliases", [])
            or word in spec.get("hidden_aliases", [])
        ):
            return name
    return None


def check_railway_command(line: str) -> None:
    words = shlex.split(line)
    while words and re.match(r"^[A-Z_]+=", words[0]):
        words.pop(0)  # environment assignments before the command
    assert words[0] == "railway", line
    words = words[1:]
    if words in (["--version"], ["-V"], ["--help"], ["-h"]):
        return
    name = _find(CLI["commands"], words[0])
    assert name, f"unknown command in {line!r}"
    spec, words = CLI["commands"][name], words[1:]
    positionals = 0
    while words:
        word = words.pop(0)
        if word == "--":
            break
        if word.startswith("-") and word not in ("-",):
            flag = word.split("=", 1)[0]
            match = [
                (long, f)
                for long, f in spec.get("flags", {}).items()
                if flag in (long, f.get("short"), *f.get("aliases", []))
            ]
            globals_ = ("--help", "-h", "--version", "-V")
            assert match or flag in globals_, f"{flag} is not a flag of {name} in {line!r}"
            spec_flag = match[0][1] if match else {}
            optional = spec_flag.get("value_optional") and (not words or words[0].startswith("-"))
            if spec_flag.get("takes_value") and "=" not in word and not optional:
                assert words, f"{flag} needs a value in {line!r}"
                value = words.pop(0)
                allowed = spec_flag.get("possible_values")
                assert not allowed or value in allowed, f"{flag} {value} in {line!r}"
            continue
        sub = _find(spec.get("subcommands", {}), word) if positionals == 0 else None
        if sub:
            spec, name = spec["subcommands"][sub], f"{name} {sub}"
            continue
        positionals += 1
        declared = spec.get("positionals", [])
        variadic = any(p.get("variadic") or p.get("trailing_var_arg") for p in declared)
        assert positionals <= len(declared) or variadic, f"extra argument {word!r} in {line!r}"
    assert not spec.get("subcommand_required") or name.count(" "), f"{name} needs a subcommand"


def test_command_checker_rejects_what_the_cli_rejects():
    for bad in (
        "railway logs --follow",
        "railway variables get DATABASE_URL",
        "railway redeploy --latest-successful",
        "railway volume add --service bot --mount-path /data",
        "railway service create bot",
    ):
        with pytest.raises(AssertionError):
            check_railway_command(bad)
    for good in (
        "railway up --ci --service bot",
        "railway volume --service bot add --mount-path /data",
        "railway run -s bot -- npm test",
        "IAC_ENVIRONMENT=staging railway config plan",
    ):
        check_railway_command(good)


def test_every_railway_command_in_generated_files_parses(rendered_matrix):
    checked: set[str] = set()
    for combo in COMBOS:
        tree = rendered_matrix.tree(combo)
        for rel in ("DEPLOYMENT.md", ".railway/railway.py", "nixpacks.toml"):
            path = tree / rel
            if path.is_file():
                for line in railway_lines(path.read_text(encoding="utf-8")):
                    if line not in checked:
                        check_railway_command(line)
                        checked.add(line)
    assert len(checked) > 10


# ------------------------------------------------------ longest answers --
LONGEST = {
    "project_slug": "a" + "-b" * 15 + "c",  # 32 characters, the maximum
    "github_repository": "o" * 39 + "/" + "r" * 100,  # GitHub's maximum lengths
    "database": "sqlite",  # the longest start command
    "redis": True,
    "deploy_mode": "autodeploy",  # REPO is written out
    "railway_config": "iac",
}


def test_longest_answers_keep_railway_py_lint_clean_and_equal(tmp_path):
    tree = matrix.render(LONGEST, tmp_path / "longest")
    path = tree / ".railway" / "railway.py"
    for argv in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        result = subprocess.run(
            [str(Path(sys.executable).parent / "ruff"), *argv, str(path)],
            cwd=tree,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    node = service_node(iac_graph(tree, "production"), LONGEST["project_slug"])
    assert node["source"]["repo"] == LONGEST["github_repository"]
    pkg = LONGEST["project_slug"].replace("-", "_")
    assert (
        node["deploy"]["startCommand"] == f"sh -c 'python -m {pkg} migrate && exec python -m {pkg}'"
    )


# ------------------------------------------------------- Node.js preview --
# runtime=node is still a preview (tests/matrix.py, PREVIEW_CHOICES): every
# combination it is built for, with every builder and every railway_config
# copier.yml accepts with it, rendered from the preview template.
NODE_RUN = "node dist/main.js"
PYTHON_TOOLING = re.compile(r"\bpython3?\b|\buv\b", re.I)


def _node_railway_params() -> list:
    params = []
    for wanted in matrix.preview_combinations():
        for builder in BUILDERS:
            for kind in matrix.choices("railway_config"):
                answers = {**wanted, "builder": builder, "railway_config": kind}
                if matrix.errors(matrix.complete({**matrix.REQUIRED_ANSWERS, **answers})):
                    continue  # refused by copier.yml (a retired format, or nixpacks without a file)
                name = f"{matrix.preview_id(wanted)}-{builder}-{kind}"
                params.append(pytest.param(answers, id=name))
    return params


NODE_RAILWAY_PARAMS = _node_railway_params()


def test_node_railway_params_cover_every_builder_and_config():
    seen = {(p.values[0]["builder"], p.values[0]["railway_config"]) for p in NODE_RAILWAY_PARAMS}
    assert {builder for builder, _ in seen} == set(BUILDERS)
    assert {"iac", "none"} <= {kind for _, kind in seen}


@pytest.mark.parametrize("wanted", NODE_RAILWAY_PARAMS)
def test_node_railway_settings_start_node(preview_tree, wanted):
    """Every form of a Node bot's Railway settings starts Node, the same way."""
    tree = preview_tree(wanted)
    table = doc_settings(tree)
    assert table["build"]["builder"] == BUILDERS[wanted["builder"]]
    # Node is PID 1 directly, SQLite included: the bot migrates as it starts
    # (src/lifecycle.ts), so no shell wraps it.
    assert table["deploy"]["startCommand"] == NODE_RUN
    if wanted["database"] == "postgres":
        assert table["deploy"]["preDeployCommand"] == f"{NODE_RUN} migrate"
    else:
        assert "preDeployCommand" not in table["deploy"]
    # The values and their reasons, as the runbook's tables print them.
    doc = (tree / "DEPLOYMENT.md").read_text(encoding="utf-8")
    rows = [line for line in doc.splitlines() if TABLE_ROW.match(line)]
    assert rows and not [row for row in rows if PYTHON_TOOLING.search(row)]

    if wanted["railway_config"] == "iac":
        node = service_node(iac_graph(tree, "production"), slug_of(tree))
        assert table == {
            section: {k: display(v) for k, v in node[section].items()}
            for section in ("build", "deploy")
        }

    if wanted["builder"] == "railpack":
        path = tree / "railpack.json"
        assert not PYTHON_TOOLING.search(path.read_text(encoding="utf-8"))
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["deploy"]["startCommand"] == table["deploy"]["startCommand"]
        # .nvmrc carries the pinned Node (includes/pins.jinja, tools.node).
        assert data["packages"] == {"node": (tree / ".nvmrc").read_text(encoding="utf-8").strip()}
        assert not linters.check_railpack_config([path])
    if wanted["builder"] == "nixpacks":
        path = tree / "nixpacks.toml"
        text = path.read_text(encoding="utf-8")
        assert not PYTHON_TOOLING.search(text)
        data = tomllib.loads(text)
        assert data["providers"] == ["node"]
        assert data["start"]["cmd"] == table["deploy"]["startCommand"]
        major = (tree / ".nvmrc").read_text(encoding="utf-8").strip().split(".")[0]
        assert data["variables"] == {"NIXPACKS_NODE_VERSION": major}
        # Nixpacks pins a major only, and knows Node 24 only from 1.41.0 on:
        # the file says so. A new Node major fails here until it is checked.
        assert f"Node {major} needs Nixpacks 1.41.0" in " ".join(text.replace("#", "").split())
        assert "LEGACY" in text and "deprecated" in text
        files = [linters.DistinctFile("nixpacks.toml", path, ("node",))]
        results = linters.lint_all(files, jobs=1)
        assert results["taplo-lint"][0] == results["taplo-format"][0] == 1
        findings = [finding for _, found in results.values() for finding in found]
        assert not findings, "\n\n".join(findings)
