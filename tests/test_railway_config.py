"""The Railway service settings, in whichever form a combination carries them.

Both runtimes, every combination of the matrix. A Python bot's IaC file is
.railway/railway.py, a Node bot's .railway/railway.ts; both are rendered from
includes/railway/service.jinja, so the same answers give the same graph,
start and migrate commands aside.

- The file manifest other tests rely on (which config/build files exist,
  and the one IaC file of the bot's language).
- One source of truth: combinations that differ only in railway_config must
  carry the same build/deploy settings in the IaC file's graph and the
  DEPLOYMENT.md table; and each combination's DEPLOYMENT.md tables must
  match its own file.
- The settings a gateway bot needs (FACTS.md section 2), checked on values,
  and validated against the reconstructed railway.schema.json: Python runs
  as `python -m <package>` (SQLite: migrate in a shell, then exec), Node as
  `node dist/main.js` (SQLite too: the bot migrates as it starts); Railpack
  and Nixpacks pin the runtime's own version.
- .railway/railway.py is imported with the real railway-sdk and evaluated,
  in-process and through the Railway CLI's own six-step inline script in a
  `python -c` subprocess (IAC.md sections 1 and 7), for every environment.
- .railway/railway.ts is evaluated with the Railway CLI's own node script
  (CLI 5.43.1) and the npm SDK, installed once per test process, for every
  environment of every Node combination.
- Either graph is checked for what the CLI would reject or delete. The
  traps the CLI turns into harm in a .ts file (no default export, a bad
  partial name, stdout) must fail those checks; railway.ts gives the graph
  railway.py gives for the same answers; at the answers' limits it passes
  the bot's own Prettier, eslint and tsc (tests/test_lint.py checks every
  variant); CI's evaluation step runs.
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
import yaml
from test_env_example import settings_env_names, settings_module
from test_generated_node import _environment
from test_reference_data import pinned_cli

import linters
import matrix
from conftest import run_tool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hooks"))
import refresh_node_locks  # from hooks/, which is no package

DATA = Path(__file__).resolve().parent / "data" / "railway"
# Railway's Config-as-Code schema: no generated file uses that format any more,
# but its keys and types are still the service settings' own (the IaC file
# sends the same build/deploy objects).
SCHEMA = json.loads((DATA / "railway.schema.json").read_text(encoding="utf-8"))
BUILDERS = {"dockerfile": "DOCKERFILE", "railpack": "RAILPACK", "nixpacks": "NIXPACKS"}
RETIRED = "2026-12-01"  # Railway stopped reading railway.json and railway.toml

# The CLI's evaluation of a .py file, as one `python3 -c` script taking the
# file's path, run from the project root: the script of `evaluate_python` in
# Railway CLI 5.43.1's src/iac/eval.rs, byte for byte. Note the `or` chains:
# an empty PARTIAL falls through to `partial`, and a falsy `main` to `default`.
CLI_EVAL = """
import importlib.util, json, sys
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("railway_iac_user", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
partial = getattr(mod, "PARTIAL", None) or getattr(mod, "Partial", None) or getattr(mod, "partial", None)
candidate = getattr(mod, "main", None) or getattr(mod, "Railway", None) or getattr(mod, "default", None)
project = candidate() if callable(candidate) else candidate
if hasattr(project, "to_graph"):
    project = project.to_graph()
print(json.dumps({"partial": partial, "project": project}, default=str))
"""  # noqa: E501 (the CLI's own lines, kept as they are)
PARTIAL_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,64}$")
COMBOS = matrix.combinations()
NODE = [c for c in COMBOS if c.answers["runtime"] == "node"]
# How the Node bot runs (package.json's start): node as PID 1, no npm.
NODE_RUN = "node dist/main.js"

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
    "BACKUP_SIGNING_KEY",
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
    return matrix.private_backups(combo.answers)


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


def is_node(combo: matrix.Combination) -> bool:
    return combo.answers["runtime"] == "node"


def bot_command(combo: matrix.Combination) -> str:
    """The command that runs the bot; its subcommands (migrate, backup) follow it."""
    return NODE_RUN if is_node(combo) else f"python -m {package(combo)}"


def iac_file(combo: matrix.Combination) -> str:
    """The IaC file of the bot's language (railway_config=iac)."""
    return ".railway/railway.ts" if is_node(combo) else ".railway/railway.py"


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
    """The graph of the tree's IaC file for one environment.

    railway.py: imported and called in-process with the SDK's context.
    railway.ts: the project the CLI would read from its evaluation, refused
    where the CLI would refuse it or plan harm (cli_payload).
    """
    if (tree / ".railway" / "railway.ts").is_file():
        assert not (tree / ".railway" / "railway.py").exists()
        return cli_payload(ts_eval(tree, env), slug_of(tree))
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
    iac = a["railway_config"] == "iac"
    expected = {
        "Dockerfile": a["builder"] == "dockerfile",
        "docker/Dockerfile": a["builder"] != "dockerfile",
        "railpack.json": a["builder"] == "railpack",
        "nixpacks.toml": a["builder"] == "nixpacks",
        # The IaC file is in the bot's language.
        ".railway/railway.py": iac and not is_node(combo),
        ".railway/railway.ts": iac and is_node(combo),
        # Config as Code, which Railway no longer reads: never generated.
        "railway.json": False,
        "railway.toml": False,
        "compose.yaml": True,
        ".dockerignore": True,
        ".env.example": True,
        "DEPLOYMENT.md": True,
        # The runtime version Railpack and Nixpacks read.
        ".nvmrc": is_node(combo),
        ".python-version": not is_node(combo),
    }
    actual = {path: (tree / path).is_file() for path in expected}
    assert actual == expected
    # Railway reads at most one config file per service, and .railway/ holds
    # nothing else (the CLI refuses more than one railway.{ts,py,go}).
    railway_dir = tree / ".railway"
    files = sorted(os.listdir(railway_dir)) if railway_dir.exists() else []
    assert files == ([Path(iac_file(combo)).name] if iac else [])


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
    run = bot_command(combo)

    assert build["builder"] == BUILDERS[a["builder"]]
    assert ("dockerfilePath" in build) == (a["builder"] == "dockerfile")
    if a["builder"] == "dockerfile":
        assert build["dockerfilePath"] == "Dockerfile"

    argv = shlex.split(coerce(deploy["startCommand"]))
    if a["database"] == "sqlite" and a["builder"] == "dockerfile":
        # The container starts as root for the volume (RAILWAY_RUN_UID=0);
        # drop-privileges, in the ENTRYPOINT's place, runs the rest as the
        # image's user.
        assert argv[0] == "/usr/local/bin/drop-privileges"
        argv = argv[1:]
    if is_node(combo):
        # Node is PID 1 directly, SQLite included: the bot migrates as it
        # starts (src/lifecycle.ts), so no shell wraps it.
        assert argv == ["node", "dist/main.js"]
    elif a["database"] == "sqlite":
        # Pre-deploy has no volume: migrate, then exec so Python becomes PID 1.
        assert argv[:2] == ["sh", "-c"] and len(argv) == 3
        assert argv[2] == f"{run} migrate && exec {run}"
    else:
        assert argv == ["python", "-m", package(combo)]
    if a["database"] == "postgres":
        assert coerce(deploy["preDeployCommand"]) == display([f"{run} migrate"])
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


@pytest.mark.parametrize("combo", COMBOS, ids=ids(COMBOS))
def test_runbook_table_matches_the_file(rendered_matrix, combo):
    tree = rendered_matrix.tree(combo)
    table = doc_settings(tree)
    settings = carried_settings(combo, tree)
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
        settings = carried_settings(twin, rendered_matrix.tree(twin))
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
    read = settings_env_names(settings_module(tree))
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
    return evaluate([sys.executable, "-c", CLI_EVAL, path], cwd, env, timeout=60)


def evaluate(
    argv: list[str], cwd: str | Path, env: dict[str, str], *, timeout: float
) -> subprocess.CompletedProcess:
    """Run an IaC evaluation as the CLI does: its stdout is the whole answer."""
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
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
    read = settings_env_names(settings_module(tree))
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
    assert shlex.split(deploy["startCommand"]) == [*shlex.split(bot_command(combo)), "backup"]
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


# The modules a .ts file imports.
TS_IMPORT = re.compile(r"^import\b[^;]*?\bfrom \"([^\"]+)\";", re.M | re.S)
# Writes to stdout, which the CLI reads as the plan's JSON.
TS_STDOUT = re.compile(r"\bconsole\.(?:log|info|debug|dir|table|trace)\b|\bprocess\.stdout\b")


@pytest.mark.parametrize("combo", IAC, ids=ids(IAC))
def test_iac_module_follows_the_cli_rules(rendered_matrix, combo):
    tree = rendered_matrix.tree(combo)
    if is_node(combo):
        _check_ts_module(tree, combo)
        return
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


def _check_ts_module(tree: Path, combo: matrix.Combination) -> None:
    """railway.ts exports what the CLI reads, under one name each, and prints nothing."""
    source = (tree / ".railway" / "railway.ts").read_text(encoding="utf-8")
    slug = slug_of(tree)
    # Two exports: the partial, by the first name the CLI tries, is the slug;
    # the default export is the SDK's project function. Nothing else the CLI
    # would take (PARTIAL, Partial, main, Railway) is exported.
    exports = [line for line in source.splitlines() if line.lstrip().startswith("export ")]
    assert len(exports) == 2, exports
    assert f'export const partial = "{slug}";' in exports
    defaults = [line for line in exports if line.startswith("export default ")]
    assert len(defaults) == 1 and defaults[0].startswith("export default defineRailway("), exports
    assert PARTIAL_NAME.match(slug)
    assert not TS_STDOUT.search(source)
    # The SDK only (a devDependency): nothing of the bot, which the CLI
    # would run without a build.
    assert TS_IMPORT.findall(source) == ["railway/iac"]
    graphs = {}
    for env in environments(combo):
        graphs[env] = iac_graph(tree, env)
        _check_graph(graphs[env], combo, tree, env)
    if combo.answers["staging"]:
        # A caller that names the environment in the context (as the SDK's
        # createRailwayContext does) gets the same graph, with IAC_ENVIRONMENT
        # unset.
        contexts = [{key: env} for env in graphs for key in ("environment", "environmentName")]
        called = ts_call_matrix(tree, contexts)
        for ctx, graph in zip(contexts, called, strict=True):
            assert graph == graphs[next(iter(ctx.values()))], ctx


@pytest.mark.parametrize("combo", IAC, ids=ids(IAC))
def test_iac_evaluates_like_the_railway_cli(rendered_matrix, combo):
    tree = rendered_matrix.tree(combo)
    slug = slug_of(tree)
    if is_node(combo):
        # The CLI's own script, with the npm SDK installed beside the file.
        for env in environments(combo):
            project = cli_payload(ts_eval(tree, env), slug)
            _check_graph(project, combo, tree, env)
        unset = ts_eval(tree, None)
        if combo.answers["staging"]:
            # No environment named: refuse, never guess production.
            assert unset.returncode != 0 and "IAC_ENVIRONMENT" in unset.stderr
            assert unset.stdout == ""
        else:
            # One fixed configuration: the CLI's bare call is all it needs.
            assert cli_payload(unset, slug) == cli_payload(ts_eval(tree, "production"), slug)
        return
    for env in environments(combo):
        result = cli_eval(tree, env)
        assert result.returncode == 0, result.stderr
        payload = json.loads(result.stdout)  # all of stdout is one JSON document
        assert payload["partial"] == slug
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
def test_builder_files_agree(rendered_matrix, combo):
    tree = rendered_matrix.tree(combo)
    a = combo.answers
    settings = carried_settings(combo, tree)
    start = (
        doc_settings(tree)["deploy"]["startCommand"]
        if settings is None
        else settings["deploy"]["startCommand"]
    )
    if is_node(combo):
        # .nvmrc carries the pinned Node (includes/pins.jinja, tools.node).
        node = (tree / ".nvmrc").read_text(encoding="utf-8").strip()
        assert re.fullmatch(r"\d+\.\d+\.\d+", node), node
    else:
        python = matrix.complete({**matrix.REQUIRED_ANSWERS, **a})["python_version"]
    if a["builder"] == "railpack":
        data = json.loads((tree / "railpack.json").read_text(encoding="utf-8"))
        assert data["deploy"]["startCommand"] == start
        if is_node(combo):
            assert data["packages"] == {"node": node}
        else:
            assert data["packages"]["python"] == python
            assert "node" not in data["packages"]
    if a["builder"] == "nixpacks":
        text = (tree / "nixpacks.toml").read_text(encoding="utf-8")
        data = tomllib.loads(text)
        assert data["start"]["cmd"] == start
        if is_node(combo):
            assert data["providers"] == ["node"]
            # Nixpacks pins a major only.
            assert data["variables"] == {"NIXPACKS_NODE_VERSION": node.split(".")[0]}
        else:
            assert data["variables"]["NIXPACKS_PYTHON_VERSION"] == python
            assert "NIXPACKS_NODE_VERSION" not in data["variables"]
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
        if path.is_file() and path.suffix in {
            ".md",
            ".py",
            ".ts",
            ".toml",
            ".yml",
            ".yaml",
            ".json",
        }:
            text = path.read_text(encoding="utf-8")
            assert f"until {RETIRED}" not in text and "stops reading" not in text, path
    if kind == "iac":
        # The partial by the name the file exports it under.
        slug = slug_of(tree)
        if is_node(combo):
            assert f'`partial = "{slug}"`' in doc and "PARTIAL" not in doc
        else:
            assert f'`PARTIAL = "{slug}"`' in doc
        assert "whole-project" in doc
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
        for rel in ("DEPLOYMENT.md", ".railway/railway.py", ".railway/railway.ts", "nixpacks.toml"):
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
    assert node["deploy"]["startCommand"] == (
        f"/usr/local/bin/drop-privileges sh -c 'python -m {pkg} migrate && exec python -m {pkg}'"
    )


# ---------------------------------------------------------------- Node.js --
# runtime=node is a matrix peer of runtime=python: the same answers for
# everything else, so every builder and railway_config is rendered for it and
# the tests above check it the same way. What only a Node bot has follows.
PYTHON_TOOLING = re.compile(r"\bpython3?\b|\buv\b", re.I)


def _others(combo: matrix.Combination) -> tuple:
    return tuple((k, v) for k, v in combo.data if k != "runtime")


def test_node_combinations_mirror_the_python_ones():
    """Every Node combination has a Python twin and the reverse (expected_from_python's pairs)."""
    python = [c for c in COMBOS if not is_node(c)]
    assert NODE and python and len(NODE) + len(python) == len(COMBOS)
    assert {_others(c) for c in NODE} == {_others(c) for c in python}
    assert {c.answers["builder"] for c in NODE} == set(BUILDERS)
    assert {c.answers["railway_config"] for c in NODE} == {"iac", "none"}


@pytest.mark.parametrize("combo", NODE, ids=ids(NODE))
def test_node_railway_settings_start_node(rendered_matrix, combo):
    """Every form of a Node bot's Railway settings starts Node, and says nothing of Python."""
    tree = rendered_matrix.tree(combo)
    table = doc_settings(tree)
    assert table["build"]["builder"] == BUILDERS[combo.answers["builder"]]
    # Node is PID 1 directly, SQLite included: the bot migrates as it starts
    # (src/lifecycle.ts), so no shell wraps it; drop-privileges execs it
    # where the Dockerfile's image starts as root for the volume.
    a = combo.answers
    drop = a["database"] == "sqlite" and a["builder"] == "dockerfile"
    assert table["deploy"]["startCommand"] == (
        f"/usr/local/bin/drop-privileges {NODE_RUN}" if drop else NODE_RUN
    )
    if combo.answers["database"] == "postgres":
        assert table["deploy"]["preDeployCommand"] == f"{NODE_RUN} migrate"
    else:
        assert "preDeployCommand" not in table["deploy"]
    # The values and their reasons, as the runbook's tables print them.
    doc = (tree / "DEPLOYMENT.md").read_text(encoding="utf-8")
    rows = [line for line in doc.splitlines() if TABLE_ROW.match(line)]
    assert rows and not [row for row in rows if PYTHON_TOOLING.search(row)]
    # Without a connected repository, the runbook deploys with the CLI (its
    # commands parse: test_every_railway_command_in_generated_files_parses).
    if combo.answers["deploy_mode"] != "autodeploy":
        assert any("railway up --ci" in line for line in railway_lines(doc))

    if combo.answers["builder"] == "railpack":
        assert not PYTHON_TOOLING.search((tree / "railpack.json").read_text(encoding="utf-8"))
    if combo.answers["builder"] == "nixpacks":
        text = (tree / "nixpacks.toml").read_text(encoding="utf-8")
        assert not PYTHON_TOOLING.search(text)
        # Nixpacks pins a major only, and knows Node 24 only from 1.41.0 on:
        # the file says so. A new Node major fails here until it is checked.
        major = (tree / ".nvmrc").read_text(encoding="utf-8").strip().split(".")[0]
        assert f"Node {major} needs Nixpacks 1.41.0" in " ".join(text.replace("#", "").split())


# ------------------------------------------------- Node.js: railway.ts --
# How Railway CLI 5.43.1 evaluates a .ts file (src/iac/eval.rs,
# evaluate_javascript), copied here because the tests must not depend on
# anything outside the repository: it runs the first `node` on PATH with the
# arguments below and the file's absolute path after `--`, in the CLI's own
# working directory and environment, plus NODE_PATH set to the nearest
# node_modules above the file. It imports the file, takes `partial` (else
# PARTIAL, else Partial) and the default export (else main, else Railway, else
# the module itself), calls a function with an empty object and writes one
# JSON document to stdout. The CLI trims stdout and parses all of it ("node
# returned non-JSON output" otherwise); a non-zero exit is "node failed to
# evaluate IaC file." followed by stderr.
TS_CLI_EVAL = """
import { pathToFileURL } from "node:url";
const file = process.argv[1];
const mod = await import(`${pathToFileURL(file).href}?t=${Date.now()}`);
const partial = mod.partial ?? mod.PARTIAL ?? mod.Partial ?? undefined;
let exported = mod.default ?? mod.main ?? mod.Railway ?? mod;
while (exported && typeof exported === "object" && "default" in exported && exported.name == null && exported.resources == null) {
  exported = exported.default;
}
const project = typeof exported === "function" ? await exported({}) : exported;
const graph = project && typeof project === "object" && "to_graph" in project ? project.to_graph() : project;
process.stdout.write(JSON.stringify({ partial, project: graph }));
"""  # noqa: E501 (the CLI's script, byte for byte)
TS_CLI_ARGS = [
    "--experimental-strip-types",
    "--disable-warning=ExperimentalWarning",
    "--input-type=module",
    "-e",
    TS_CLI_EVAL,
    "--",
]
# The npm SDK (railway 3.11.0, dist/iac/index.js) recognises that script by
# its text and then runs `$_ --version` (the shell sets `_` to the program it
# started: the railway binary) and refuses a CLI older than 5.42.1. No
# railway binary installs here, so a stand-in answers with this version, the
# one the workflows pin (includes/pins.jinja).
CLI_VERSION = pinned_cli()
SQLITE_START = re.compile(r"^(/usr/local/bin/drop-privileges )?sh -c '(.+) migrate && exec \2'$")


def _ts_params() -> list:
    params = []
    for wanted in matrix.tier_combinations("node"):
        params.append(pytest.param(wanted, id=matrix.tier_id(wanted)))
    # The file's other branches: a connected repository, one environment,
    # the other builders, and the backup cron service.
    for extra in (
        {
            "database": "sqlite",
            "redis": True,
            "builder": "railpack",
            "deploy_mode": "autodeploy",
            "staging": False,
        },
        {
            "database": "postgres",
            "redis": False,
            "builder": "nixpacks",
            "deploy_mode": "autodeploy",
        },
        {"database": "none", "redis": False, "builder": "railpack", "staging": False},
        {"database": "postgres", "redis": True, "backups": True, "backup_path": "railway"},
    ):
        wanted = {"runtime": "node", "backups": False, **extra}
        assert not matrix.errors(matrix.complete({**matrix.REQUIRED_ANSWERS, **wanted})), wanted
        name = "-".join(str(v) for k, v in extra.items() if k != "redis")
        params.append(
            pytest.param(wanted, id=f"node-{name}-{'redis' if extra['redis'] else 'no-redis'}")
        )
    return params


TS_PARAMS = _ts_params()


@pytest.fixture(scope="session")
def installed_tree(tree_for):
    """A render with `npm ci` done in it, as its developers have it; once per worker."""
    installed: set[Path] = set()

    def tree(wanted: dict) -> Path:
        path = tree_for(wanted)
        if path not in installed:
            run_tool(refresh_node_locks.npm("ci"), path, _environment(), timeout=600)
            installed.add(path)
        return path

    return tree


@cache
def railway_binary(version: str = CLI_VERSION) -> Path:
    """A stand-in for the railway binary that only answers `--version`; once per process."""
    path = matrix.scratch_dir("crb-railway-cli-") / "railway"
    path.write_text(f'#!/bin/sh\necho "railway {version}"\n', encoding="utf-8")
    path.chmod(0o755)
    return path


def nearest_node_modules(file: Path) -> Path | None:
    """The CLI's NODE_PATH: the first node_modules directory above the file."""
    for directory in file.parents:
        if (directory / "node_modules").is_dir():
            return directory / "node_modules"
    return None


def ts_cli_eval(
    tree: Path, env_name: str | None, railway: Path, file: Path | None = None
) -> subprocess.CompletedProcess:
    file = (file or tree / ".railway" / "railway.ts").resolve()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"IAC_ENVIRONMENT", "NODE_OPTIONS", "NODE_PATH"}
    }
    env["PATH"] = f"{refresh_node_locks.node_bin()}{os.pathsep}{env.get('PATH', '')}"
    env["_"] = str(railway)
    if (modules := nearest_node_modules(file)) is not None:
        env["NODE_PATH"] = str(modules)
    if env_name is not None:
        env["IAC_ENVIRONMENT"] = env_name
    node = str(refresh_node_locks.node_bin() / "node")
    return evaluate([node, *TS_CLI_ARGS, str(file)], tree, env, timeout=120)


# Calls the default export with each context of the caller's choice, in one
# process (not the CLI's script, so the SDK runs no CLI version check).
TS_CALL = """
import { pathToFileURL } from "node:url";
const [file, contexts] = process.argv.slice(1);
const mod = await import(pathToFileURL(file).href);
const graphs = [];
for (const ctx of JSON.parse(contexts)) graphs.push(await mod.default(ctx));
process.stdout.write(JSON.stringify(graphs));
"""


def ts_call(tree: Path, contexts: list[dict], file: Path | None = None) -> list[dict]:
    """The default export's graph for each context, with IAC_ENVIRONMENT unset."""
    env = {k: v for k, v in _environment().items() if k != "IAC_ENVIRONMENT"}
    node = str(refresh_node_locks.node_bin() / "node")
    file = file or tree / ".railway" / "railway.ts"
    result = evaluate(
        [node, *TS_CLI_ARGS[:3], "-e", TS_CALL, "--", str(file), json.dumps(contexts)],
        tree,
        env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    graphs = json.loads(result.stdout)
    assert len(graphs) == len(contexts)
    return graphs


# The matrix's railway.ts files, evaluated without an `npm ci` per tree: each
# distinct file (by its bytes) is copied once into the installed project of
# linters.installed_node_project(), which holds every dependency any Node
# combination has at the lock's versions, as <project>/iac/<digest>/.railway/
# railway.ts. Node's ESM resolution finds <project>/node_modules above it (it
# ignores NODE_PATH), and the CLI's NODE_PATH is that directory too.
_ts_copies: dict[str, tuple[Path, Path]] = {}  # digest -> (copy, first tree that rendered it)


def _ts_copy(tree: Path) -> str:
    source = (tree / ".railway" / "railway.ts").read_bytes()
    digest = hashlib.blake2b(source, digest_size=16).hexdigest()
    if digest not in _ts_copies:
        copy_path = linters.installed_node_project() / "iac" / digest / ".railway" / "railway.ts"
        copy_path.parent.mkdir(parents=True, exist_ok=True)
        copy_path.write_bytes(source)
        _ts_copies[digest] = (copy_path, tree)
    return digest


@cache
def _ts_eval(digest: str, env_name: str | None) -> subprocess.CompletedProcess:
    copy_path, tree = _ts_copies[digest]
    return ts_cli_eval(tree, env_name, railway_binary(CLI_VERSION), file=copy_path)


def ts_eval(tree: Path, env_name: str | None) -> subprocess.CompletedProcess:
    """The Railway CLI's evaluation of the tree's railway.ts; once per distinct file."""
    return _ts_eval(_ts_copy(tree), env_name)


@cache
def _ts_call(digest: str, contexts: str) -> str:
    copy_path, tree = _ts_copies[digest]
    return json.dumps(ts_call(tree, json.loads(contexts), file=copy_path))


def ts_call_matrix(tree: Path, contexts: list[dict]) -> list[dict]:
    """ts_call on a matrix tree's railway.ts, through its installed copy; once per file."""
    return json.loads(_ts_call(_ts_copy(tree), json.dumps(contexts, sort_keys=True)))


def cli_payload(result: subprocess.CompletedProcess, slug: str) -> dict:
    """What the CLI would read from an evaluation, refused where it would plan harm."""
    assert result.returncode == 0, f"node failed to evaluate IaC file.\n{result.stderr}"
    # All of stdout is one JSON document: anything else printed breaks the plan.
    payload = json.loads(result.stdout)
    assert set(payload) == {"partial", "project"}, payload
    # The partial name the CLI accepts, and the one the file was generated with.
    assert isinstance(payload["partial"], str) and PARTIAL_NAME.match(payload["partial"])
    assert payload["partial"] == slug
    # No default export leaves the module itself as the project: no
    # resources, so the plan would delete everything the partial owns.
    project = payload["project"]
    assert isinstance(project, dict) and project.get("name") == slug, project
    assert isinstance(project.get("resources"), list) and project["resources"], project
    return project


def expected_from_python(py_graph: dict, wanted: dict) -> dict:
    """The Python file's graph with what a Node bot runs instead: its commands.

    Nothing else may differ: builders, images, variables, volumes, sources and
    every other deploy setting come from the same includes/railway/service.jinja.
    """
    graph = copy.deepcopy(py_graph)
    pkg = matrix.complete({**matrix.REQUIRED_ANSWERS, **wanted, "runtime": "python"})[
        "package_name"
    ]
    for node in graph["resources"]:
        deploy = node.get("deploy", {})
        if "startCommand" in deploy:
            start = deploy["startCommand"]
            if match := SQLITE_START.match(start):
                # Python migrates in a shell before exec; the Node bot
                # migrates as it starts, node itself PID 1. Both start
                # through drop-privileges where the Dockerfile's image runs.
                assert match.group(2) == f"python -m {pkg}"
                deploy["startCommand"] = (match.group(1) or "") + NODE_RUN
            elif start.endswith(" backup"):
                assert start == f"python -m {pkg} backup"
                deploy["startCommand"] = f"{NODE_RUN} backup"
            else:
                assert start == f"python -m {pkg}"
                deploy["startCommand"] = NODE_RUN
        if "preDeployCommand" in deploy:
            assert deploy["preDeployCommand"] == [f"python -m {pkg} migrate"]
            deploy["preDeployCommand"] = [f"{NODE_RUN} migrate"]
    return graph


@pytest.mark.slow
@pytest.mark.parametrize("wanted", TS_PARAMS)
def test_node_iac_evaluates_like_the_railway_cli(installed_tree, tree_for, wanted):
    """railway.ts, run as the CLI runs it, gives railway.py's graph for the same answers."""
    tree = installed_tree(wanted)
    py_tree = tree_for({**wanted, "runtime": "python"})
    assert not (tree / ".railway" / "railway.py").exists()
    assert not (py_tree / ".railway" / "railway.ts").exists()
    railway = railway_binary(CLI_VERSION)
    slug = slug_of(tree)
    envs = ["production", "staging"] if wanted.get("staging", True) else ["production"]
    for env in envs:
        project = cli_payload(ts_cli_eval(tree, env, railway), slug)
        py_result = cli_eval(py_tree, env)
        assert py_result.returncode == 0, py_result.stderr
        py_graph = json.loads(py_result.stdout)["project"]
        assert project == expected_from_python(py_graph, wanted)
        # The runbook's table is this file's, value for value.
        assert doc_settings(tree) == {
            section: {k: display(v) for k, v in service_node(project, slug)[section].items()}
            for section in ("build", "deploy")
        }
        if len(envs) > 1:
            # A caller that names the environment in the context (as the
            # SDK's createRailwayContext does) gets the same graph, with
            # IAC_ENVIRONMENT unset.
            contexts = [{"environment": env}, {"environmentName": env}]
            assert ts_call(tree, contexts) == [project, project]
    unset = ts_cli_eval(tree, None, railway)
    if len(envs) > 1:
        # No environment named: refuse, never guess production.
        assert unset.returncode != 0 and "IAC_ENVIRONMENT" in unset.stderr
        assert unset.stdout == ""
    else:
        # One fixed configuration: the CLI's bare call is all it needs.
        assert cli_payload(unset, slug) == cli_payload(
            ts_cli_eval(tree, "production", railway), slug
        )


def test_node_iac_guards_catch_the_cli_traps(installed_tree):
    """The checks above fail on the mistakes the CLI would turn into a harmful plan."""
    wanted = matrix.tier_combinations("node")[-1]
    tree = installed_tree(wanted)
    railway = railway_binary(CLI_VERSION)
    slug = slug_of(tree)
    source = (tree / ".railway" / "railway.ts").read_text(encoding="utf-8")
    cli_payload(ts_cli_eval(tree, "production", railway), slug)

    def evaluate(text: str) -> subprocess.CompletedProcess:
        assert text != source, "the fault was not introduced"
        # Beside the real file, so it resolves railway/iac the same way.
        path = tree / ".railway" / "broken.ts"
        path.write_text(text, encoding="utf-8")
        try:
            return ts_cli_eval(tree, "production", railway, file=path)
        finally:
            path.unlink()

    # No default export: the CLI takes the module itself, a project with no
    # resources, and plans to delete everything the partial owns.
    assert "export default defineRailway(" in source
    no_default = evaluate(
        source.replace("export default defineRailway(", "export const main2 = defineRailway(")
    )
    assert no_default.returncode == 0
    with pytest.raises(AssertionError):
        cli_payload(no_default, slug)
    # A partial name the CLI rejects ("Invalid partial export").
    bad_partial = evaluate(
        source.replace(f'export const partial = "{slug}";', 'export const partial = "*";')
    )
    with pytest.raises(AssertionError):
        cli_payload(bad_partial, slug)
    # Anything printed on stdout: the CLI cannot parse the result.
    chatty = evaluate(
        source.replace("const SERVICE =", 'console.log("evaluating");\nconst SERVICE =')
    )
    assert chatty.returncode == 0
    with pytest.raises(json.JSONDecodeError):
        cli_payload(chatty, slug)
    # The SDK refuses a CLI too old to evaluate it: the file says >= 5.42.1.
    old = ts_cli_eval(tree, "production", railway_binary("5.42.0"))
    assert old.returncode != 0 and "Railway CLI 5.42.1 or newer" in old.stderr
    assert "Railway CLI >= 5.42.1" in source


LONGEST_NODE = pytest.param(
    {"runtime": "node", "backups": False, **LONGEST, "staging": True}, id="node-longest"
)


@pytest.mark.slow
@pytest.mark.parametrize("wanted", [LONGEST_NODE])
def test_railway_ts_passes_the_bots_linters(installed_tree, wanted):
    """Prettier, eslint (type-checked) and tsc, run by the bot itself, find nothing in railway.ts.

    At the answers' limits, which the matrix does not reach (tests/test_lint.py
    checks every combination's file), and through the bot's own tsconfig.json.
    """
    tree = installed_tree(wanted)
    if wanted.get("project_slug") == LONGEST["project_slug"]:
        assert "\nconst REPO =\n  " in (tree / ".railway" / "railway.ts").read_text(
            encoding="utf-8"
        )
    env = _environment()
    npx = refresh_node_locks.npx
    run_tool(npx("prettier", "--check", ".railway"), tree, env, timeout=300)
    run_tool(npx("eslint", ".railway"), tree, env, timeout=300)
    listed = run_tool(npx("tsc", "-p", ".", "--listFilesOnly"), tree, env, timeout=300)
    # tsc skips dot-directories it is not pointed at: the file is named in tsconfig.json.
    assert str(tree / ".railway" / "railway.ts") in listed.splitlines()
    run_tool(npx("tsc", "-p", "."), tree, env, timeout=300)


def test_node_ci_evaluation_step_runs(installed_tree):
    """CI's railway-config step (ci.yml) passes on the file and fails without a default export."""
    wanted = matrix.tier_combinations("node")[-1]
    tree = installed_tree(wanted)
    ci = yaml.safe_load((tree / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    steps = ci["jobs"]["railway-config"]["steps"]
    script = next(s["run"] for s in steps if s.get("name") == "Evaluate .railway/railway.ts")
    env = {k: v for k, v in _environment().items() if k != "IAC_ENVIRONMENT"}

    def run() -> subprocess.CompletedProcess:
        return evaluate(["bash", "-e", "-c", script], tree, env, timeout=120)

    result = run()
    assert result.returncode == 0, result.stderr
    slug = slug_of(tree)
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["staging", "production"]
    assert all(f"service.{slug}" in line for line in lines)

    path = tree / ".railway" / "railway.ts"
    source = path.read_text(encoding="utf-8")
    try:
        path.write_text(
            source.replace("export default ", "export const railway = "), encoding="utf-8"
        )
        broken = run()
    finally:
        path.write_text(source, encoding="utf-8")
    assert broken.returncode != 0 and "no default export" in broken.stderr
