"""Record what `railway config plan --json` prints, from the Railway CLI's own code.

The deploy workflows read that JSON to stop a plan that changes a database's
image. Its shape is the CLI's: the engine (src/iac/engine.rs) serialises its
change set, and `config plan --json` prints it after reading it back through
`RunnerResponse` (src/commands/config/runner.rs), whose structs keep only
the fields they declare (a change keeps `summary`, `severity`, `kind` and
`details`). This script runs that code instead of describing it:

1. it copies the CLI's IaC modules (src/iac/change_set.rs, compiler.rs,
   graph.rs, json.rs, partial.rs) and the structs of runner.rs out of a clone
   of the CLI at COMMIT into a scratch crate, with a small main that diffs
   two graphs with `diff_graphs` and prints the result through
   `RunnerResponse`, and builds it with cargo;
2. it renders a Python bot (PostgreSQL, Redis, defaults elsewhere) and
   evaluates its `.railway/railway.py` with railway-sdk the way the CLI
   does: that is the desired graph;
3. for each scenario, the environment on Railway is what an apply of an
   earlier file left (compiler.rs's `graph_to_environment_config`), read
   back the way the CLI reads it (`environment_config_to_graph`);
4. it writes tests/data/railway/cli-plans.json: each scenario's output, the
   serialised structs' fields as declared in runner.rs, and the commit.

Nothing is fetched: the CLI clone is given, and the crate builds offline
against Debian's packaged crates (apt-get install librust-serde-json-dev
librust-regex-dev librust-serde-derive-dev; cargo 1.85 or newer). Not
recorded: Backboard's server-side preview, which `config plan` asks for
when the local diff has changes and whose changes then replace the local
ones (engine.rs); no account is available to observe it.

    .venv/bin/python hooks/record_cli_plans.py CLI_GIT_DIR COMMIT VERSION
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "railway"
OUT = DATA / "cli-plans.json"
sys.path.insert(0, str(ROOT / "tests"))

import matrix  # noqa: E402  (tests/matrix.py, found through the path above)

MODULES = ("change_set", "compiler", "graph", "json", "partial")
RUNNER = "src/commands/config/runner.rs"

# The harness's main: engine.rs's `run` minus the network (no Backboard
# preview, no apply), its RunnerWire field for field, read back through
# runner.rs's RunnerResponse and printed as `config plan --json` prints it.
MAIN_RS = r"""
#![allow(dead_code, unused_imports)]
mod iac;
mod runner;

use iac::change_set::{DiffOptions, diff_graphs, render_change_set};
use iac::compiler::{
    CompileOptions, EnvironmentConfigToGraphOptions, environment_config_to_graph,
    graph_to_environment_config, project_definition_to_graph,
};
use serde_json::{Map, Value, json};
use std::io::Read;

fn merge(target: &mut Value, patch: &Value) {
    if let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if v.is_object() && t.get(k).is_some_and(Value::is_object) {
                merge(t.get_mut(k).unwrap(), v);
            } else {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let input: Value = serde_json::from_str(&input).unwrap();
    let desired = project_definition_to_graph(&input["desired"]);
    let previous = project_definition_to_graph(&input["previous"]);
    let existing: Vec<String> = previous
        .resources
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut config = graph_to_environment_config(
        &previous,
        &CompileOptions { existing_service_ids: existing.clone(), ..Default::default() },
    );
    merge(&mut config, &input["currentPatch"]);
    let options = EnvironmentConfigToGraphOptions {
        project_name: input["desired"]["name"].as_str().map(str::to_string),
        service_names_by_id: existing.iter().map(|n| (n.clone(), json!(n))).collect(),
        ..Default::default()
    };
    let current = environment_config_to_graph(&config, &options);
    let change_set = diff_graphs(DiffOptions {
        current: &current,
        desired: &desired,
        reveal_values: false,
        partial: input["partial"].as_str(),
        owners: None,
    });
    let diagnostics: Vec<Value> = change_set
        .diagnostics
        .iter()
        .map(|d| json!({"severity": d.severity, "path": d.path, "message": d.message}))
        .collect();
    let ok = diagnostics.iter().all(|d| d["severity"] != "error");
    let wire = json!({
        "ok": ok,
        "command": "plan",
        "file": input["file"],
        "currentEnvironment": input["currentEnvironment"],
        "changeSet": serde_json::to_value(&change_set).unwrap(),
        "diff": render_change_set(&change_set),
        "diagnostics": diagnostics,
        "currentGraph": serde_json::to_value(&current).unwrap(),
        "desiredGraph": serde_json::to_value(&desired).unwrap(),
        "applyResult": null,
        "claim": false,
    });
    let response: runner::RunnerResponse = serde_json::from_value(wire).unwrap();
    println!("{}", serde_json::to_string_pretty(&response).unwrap());
}
"""

CARGO_TOML = """[package]
name = "plan-harness"
version = "0.0.0"
edition = "2024"

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
regex = "1"
"""

CARGO_CONFIG = """[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "/usr/share/cargo/registry"

[net]
offline = true
"""

STRUCT = re.compile(
    r"#\[derive\([^)]*Serialize[^)]*\)\]\s*"
    r"(?P<attrs>(?:#\[serde\([^\]]*\)\]\s*)*)"
    r"(?:pub(?:\(super\))? )?struct (?P<name>\w+) \{(?P<body>.*?)\n\}",
    re.S,
)
FIELD = re.compile(r"^\s*(?:pub(?:\(super\))? )?(?:r#)?(?P<name>\w+): (?P<type>.+),$")


def git_show(git_dir: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def serialised_structs(runner_rs: str) -> dict[str, dict[str, Any]]:
    """runner.rs's serialised structs: each JSON field name with its Rust type."""
    structs = {}
    for m in STRUCT.finditer(runner_rs):
        rename = 'rename_all = "camelCase"' in m["attrs"]
        fields = {}
        for line in m["body"].splitlines():
            if (f := FIELD.match(line)) and not line.strip().startswith("#"):
                fields[camel(f["name"]) if rename else f["name"]] = f["type"]
        structs[m["name"]] = {"fields": fields}
    return structs


def build(git_dir: Path, commit: str, crate: Path) -> Path:
    (crate / "src" / "iac").mkdir(parents=True)
    (crate / ".cargo").mkdir()
    for module in MODULES:
        text = git_show(git_dir, commit, f"src/iac/{module}.rs")
        (crate / "src" / "iac" / f"{module}.rs").write_text(text, encoding="utf-8")
    (crate / "src" / "iac" / "mod.rs").write_text(
        "".join(f"pub mod {m};\n" for m in MODULES), encoding="utf-8"
    )
    runner = git_show(git_dir, commit, RUNNER)
    start = runner.index("#[derive(Deserialize, serde::Serialize)]")
    end = runner.index("pub(super) async fn", start)
    structs = runner[start:end].replace("pub(super) ", "pub ")
    structs = re.sub(r"(?m)^struct ", "pub struct ", structs)
    (crate / "src" / "runner.rs").write_text(
        "use serde::Deserialize;\nuse serde_json::Value;\n\n" + structs, encoding="utf-8"
    )
    (crate / "src" / "main.rs").write_text(MAIN_RS, encoding="utf-8")
    (crate / "Cargo.toml").write_text(CARGO_TOML, encoding="utf-8")
    (crate / ".cargo" / "config.toml").write_text(CARGO_CONFIG, encoding="utf-8")
    subprocess.run(["cargo", "build", "--quiet", "--release"], cwd=crate, check=True)
    return crate / "target" / "release" / "plan-harness"


def desired_graph(scratch: Path) -> dict[str, Any]:
    """The rendered bot's railway.py, evaluated as the CLI's evaluate_python does.

    The CLI calls `main` without arguments; IAC_ENVIRONMENT names the
    environment, as in the deploy workflows.
    """
    tree = matrix.render(
        {"runtime": "python", "database": "postgres", "redis": True}, scratch / "bot"
    )
    script = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('railway_iac_user', sys.argv[1])\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "partial = getattr(mod, 'PARTIAL', None)\n"
        "project = mod.main()\n"
        "print(json.dumps({'partial': partial, 'project': project.to_graph()}, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tree / ".railway" / "railway.py")],
        cwd=tree,
        env={**os.environ, "IAC_ENVIRONMENT": "production"},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout)


def with_image(graph: dict[str, Any], name: str, image: str) -> dict[str, Any]:
    graph = copy.deepcopy(graph)
    for resource in graph["resources"]:
        if resource["name"] == name:
            resource["image"] = image
            resource["source"]["image"] = image
    return graph


def without(graph: dict[str, Any], name: str) -> dict[str, Any]:
    """The graph without the resource `name` and the variables that reference it."""
    graph = copy.deepcopy(graph)
    graph["resources"] = [r for r in graph["resources"] if r["name"] != name]
    for resource in graph["resources"]:
        variables = resource.get("variables", {})
        for key in [k for k, v in variables.items() if v.get("resource", "").endswith(f".{name}")]:
            del variables[key]
    return graph


def with_variable(graph: dict[str, Any], service: str, key: str, value: str) -> dict[str, Any]:
    graph = copy.deepcopy(graph)
    for resource in graph["resources"]:
        if resource["name"] == service:
            resource["variables"][key] = {"type": "literal", "value": value}
    return graph


def scenarios(desired: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """name: (what the environment holds, the graph an earlier apply left)."""
    bot = next(r["name"] for r in desired["resources"] if r["type"] == "service")
    return {
        "no-change": ("the environment is what the file declares", desired),
        "postgres-ssl-17-to-18": (
            "Postgres runs ghcr.io/railwayapp-templates/postgres-ssl:17; the file says :18",
            with_image(desired, "Postgres", "ghcr.io/railwayapp-templates/postgres-ssl:17"),
        ),
        "postgres-17-to-18": (
            "Postgres runs postgres:17 (the Docker Hub image); the file says postgres-ssl:18",
            with_image(desired, "Postgres", "postgres:17"),
        ),
        "postgres-16-alpine-to-18": (
            "Postgres runs postgres:16-alpine, which normalize_image_tag leaves as it is",
            with_image(desired, "Postgres", "postgres:16-alpine"),
        ),
        "postgres-same-major": (
            "Postgres runs postgres:18.1, the same major: normalize_image_tag makes it equal",
            with_image(desired, "Postgres", "postgres:18.1"),
        ),
        "redis-7-to-8": (
            "Redis runs redis:7; the file says redis:8",
            with_image(desired, "Redis", "redis:7"),
        ),
        "redis-same-major": (
            "Redis runs railwayapp/redis:8.2, which the CLI counts as redis:8",
            with_image(desired, "Redis", "railwayapp/redis:8.2"),
        ),
        "create-redis": (
            "the environment has no Redis yet: the plan creates one",
            without(desired, "Redis"),
        ),
        "bot-variable": (
            "the bot's LOG_LEVEL is DEBUG on Railway; the file says INFO",
            with_variable(desired, bot, "LOG_LEVEL", "DEBUG"),
        ),
        "bot-variable-deleted": (
            "the bot has a variable the file does not declare: the plan deletes it",
            with_variable(desired, bot, "EXTRA_SETTING", "1"),
        ),
        "postgres-major-and-bot-variable": (
            "Postgres runs postgres-ssl:17 and the bot's LOG_LEVEL is DEBUG",
            with_variable(
                with_image(desired, "Postgres", "ghcr.io/railwayapp-templates/postgres-ssl:17"),
                bot,
                "LOG_LEVEL",
                "DEBUG",
            ),
        ),
    }


def plan(
    harness: Path, partial: str | None, previous: dict[str, Any], desired: dict[str, Any]
) -> dict[str, Any]:
    request = {
        "file": "/home/runner/work/pingu-bot/pingu-bot/.railway/railway.py",
        "currentEnvironment": {
            "projectId": "00000000-0000-4000-8000-000000000001",
            "projectName": desired["name"],
            "environmentId": "00000000-0000-4000-8000-000000000002",
            "environmentName": "production",
        },
        "partial": partial,
        "previous": previous,
        "desired": desired,
        "currentPatch": {},
    }
    done = subprocess.run(
        [str(harness)], input=json.dumps(request), capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    git_dir, commit, version = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    full = subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", f"{commit}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="crb-cli-plans-") as scratch:
        harness = build(git_dir, full, Path(scratch) / "crate")
        evaluated = desired_graph(Path(scratch))
        partial, desired = evaluated["partial"], evaluated["project"]
        plans = {
            name: {"environment": about, "output": plan(harness, partial, previous, desired)}
            for name, (about, previous) in scenarios(desired).items()
        }
    record = {
        "cli_version": version,
        "cli_commit": full,
        "about": [
            "What `railway config plan --json` prints, produced by the CLI's own code at "
            "cli_commit (hooks/record_cli_plans.py says how): src/iac/change_set.rs's "
            "diff_graphs on the graph of a rendered bot's .railway/railway.py (PostgreSQL, "
            "Redis) against an environment holding what each scenario says, printed through "
            "runner.rs's RunnerResponse.",
            "'structs' are runner.rs's serialised structs with their JSON field names, read from "
            "its source at cli_commit; serde prints every declared field (null when absent) and "
            "nothing else.",
            "Not covered: Backboard's server-side preview, whose changes replace the local ones "
            "when the local diff has any (src/iac/engine.rs).",
        ],
        "structs": serialised_structs(git_show(git_dir, full, RUNNER)),
        "plans": plans,
    }
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    OUT.write_text(text, encoding="utf-8")
    sources_path = DATA / "SOURCES.json"
    sources = json.loads(sources_path.read_text(encoding="utf-8"))
    sources[OUT.name] = {
        "source": "What `railway config plan --json` prints, from the CLI's own diff and "
        "RunnerResponse (hooks/record_cli_plans.py)",
        "version": version,
        "commit": full,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }
    sources_path.write_text(
        json.dumps(dict(sorted(sources.items())), indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
