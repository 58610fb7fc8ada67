"""The GitHub automation of every rendered combination, read as data.

Linting (actionlint, zizmor, yamllint, the JSON schemas) is test_lint.py's
job; this file checks what the workflows do, per option:

- the manifest: which of .github/ and scripts/ each option adds or removes;
- CI's triggers and jobs (lint and test always; the image build with the
  Dockerfile builder; the Railway config check with a config file), its
  service containers and their variables per database and Redis answer;
- deploy.yml and manual-deploy.yml: CI gates every deploy, GitHub
  Environments staging/production exist exactly when staging does, deploys
  use `railway up --ci --service <slug>`, concurrency never cancels a
  deploy, IaC is applied without --confirm-destructive;
- backup.yml (backup_path=actions, PostgreSQL): schedule and manual runs, one
  run per Railway environment with its own secrets, the heartbeat,
  an artifact with a retention period;
- security: `permissions: {}` at the top and read-only job permissions,
  `persist-credentials: false` on every checkout, no `${{ }}` inside a
  run: script, every action pinned to a 40-hex SHA with its tag, equal to
  includes/pins.jinja; every image equal to a pin;
- dependabot.yml: the uv (Python) or npm (Node) ecosystem, github-actions
  and docker, grouped;
- a Node bot's CI on every combination: npm and the pinned Node instead of
  uv, the same services and security rules, a railway-config job that
  evaluates .railway/railway.ts; its deploy workflows set up Node and npm ci
  before the same plan and apply (matrix.tier_combinations("node")).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import tomllib
import uuid
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2 import Environment, FileSystemLoader
from test_dockerfile import NODE_PARAMS
from test_dockerfile import pinned_images as dockerfile_pins

import matrix
from conftest import RenderedMatrix, combination_params
from linters import SafeLoader

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "includes" / "pins.jinja"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>\s+#.*)?$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})$")


@cache
def pinned_actions() -> dict[str, tuple[str, str]]:
    text = PINS.read_text(encoding="utf-8")
    pattern = r'"([\w.-]+/[\w.-]+)":\s*"([0-9a-f]{40}) # (v[\w.-]+)"'
    return {name: (sha, tag) for name, sha, tag in re.findall(pattern, text)}


@cache
def pinned_age() -> dict[str, str]:
    """The age release archive includes/pins.jinja pins: its URL and SHA-256."""
    env = Environment(loader=FileSystemLoader(str(ROOT)))
    source = (
        '{%- from "includes/pins.jinja" import downloads with context -%}'
        "{{ downloads.age | tojson }}"
    )
    text = env.from_string(source).render(python_version=str(matrix.choices("python_version")[0]))
    return dict(json.loads(text))


@cache
def pinned_images() -> frozenset[str]:
    """Every image includes/pins.jinja renders, for each Python version offered."""
    return frozenset(
        image
        for version in matrix.choices("python_version")
        for image in dockerfile_pins(str(version)).values()
    )


def load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=SafeLoader)
    assert isinstance(data, dict), path
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    if True in data:
        data["on"] = data.pop(True)
    return data


def workflows(tree: Path) -> dict[str, dict[str, Any]]:
    return {p.name: load(p) for p in sorted((tree / ".github" / "workflows").glob("*.yml"))}


def run_scripts(workflow: dict[str, Any]) -> list[str]:
    return [
        step["run"]
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "run" in step
    ]


def branches(answers: dict[str, Any]) -> list[str]:
    return ["main", "develop"] if answers["staging"] else ["main"]


def environments(answers: dict[str, Any]) -> list[str]:
    return ["staging", "production"] if answers["staging"] else ["production"]


def expected_manifest(answers: dict[str, Any]) -> set[str]:
    """The files this part of the template owns, per option."""
    files = {".github/workflows/ci.yml", ".github/dependabot.yml", "scripts/template-update.sh"}
    if answers["template_updates"]:
        files.add(".github/workflows/template-update.yml")
        # Copier's hashed pins for it (locks/copier/README.md).
        files.add(".github/template-update-requirements.txt")
    if answers["deploy_mode"] == "actions":
        files |= {".github/workflows/deploy.yml", ".github/workflows/manual-deploy.yml"}
    if answers.get("backups") and answers.get("backup_path") == "actions":
        # The private path (railway) backs up from inside the project: no
        # workflow, no scripts, no database URL in GitHub.
        files |= {".github/workflows/backup.yml", "scripts/backup.sh", "scripts/restore.sh"}
    if any(name in files for name in ALERTING):
        files.add("scripts/alert.sh")
    if answers["database"] == "sqlite":
        # The start command's privilege drop for the volume (docs/design/security.md).
        files.add("scripts/drop-privileges.sh")
    return files


#: The workflows that alert on Discord, and when: (job watched, what counts).
ALERTING = {
    ".github/workflows/deploy.yml": ("deploy", {"needs.deploy.result == 'failure'"}),
    ".github/workflows/manual-deploy.yml": ("deploy", {"needs.deploy.result == 'failure'"}),
    ".github/workflows/backup.yml": ("backup", {"needs.backup.result == 'failure'"}),
    ".github/workflows/template-update.yml": (
        ["update", "publish"],
        {"contains(needs.*.result, 'failure')", "needs.update.outputs.conflicts == 'true'"},
    ),
}

PARAMS = combination_params()


@pytest.mark.parametrize("combo", PARAMS)
def test_manifest(rendered_matrix: RenderedMatrix, combo: matrix.Combination) -> None:
    tree = rendered_matrix.tree(combo)
    present = {
        p.relative_to(tree).as_posix()
        for folder in (".github", "scripts")
        if (tree / folder).exists()
        for p in (tree / folder).rglob("*")
        if p.is_file()
    }
    assert present == expected_manifest(combo.answers)
    for script in (
        "scripts/alert.sh",
        "scripts/backup.sh",
        "scripts/drop-privileges.sh",
        "scripts/restore.sh",
        "scripts/template-update.sh",
    ):
        if script in present:
            assert (tree / script).stat().st_mode & 0o111, f"{script} must be executable"


@pytest.mark.parametrize("combo", PARAMS)
def test_ci(rendered_matrix: RenderedMatrix, combo: matrix.Combination) -> None:
    answers = combo.answers
    ci = workflows(rendered_matrix.tree(combo))["ci.yml"]
    on = ci["on"]
    assert "pull_request" in on
    if answers["deploy_mode"] == "actions":
        # Pushes are tested by deploy.yml's call; a push trigger would test twice.
        assert set(on) == {"pull_request", "workflow_call"}
    else:
        assert set(on) == {"pull_request", "push"}
        assert on["push"]["branches"] == branches(answers)
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"

    jobs = ci["jobs"]
    expected = {"lint", "test", "audit"}
    if answers["builder"] == "dockerfile":
        expected.add("image")
    if answers["railway_config"] != "none":
        expected.add("railway-config")
    assert set(jobs) == expected
    check_services(jobs["test"], answers)
    if answers["runtime"] == "node":
        check_node_ci(rendered_matrix.tree(combo), answers)
    else:
        check_python_ci(jobs, answers)

    if "image" in jobs:
        build = next(s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", ""))
        assert build["with"]["push"] is False and build["with"]["file"] == "Dockerfile"
    if answers["railway_config"] == "iac":
        iac_file = ".railway/railway.ts" if answers["runtime"] == "node" else ".railway/railway.py"
        script = "\n".join(run_scripts({"jobs": {"c": jobs["railway-config"]}}))
        assert "IAC_ENVIRONMENT" in script and iac_file in script
        for environment in environments(answers):
            assert environment in script


def check_python_ci(jobs: dict[str, Any], answers: dict[str, Any]) -> None:
    """uv, ruff, mypy and pytest, with the services required."""
    # Known vulnerabilities in the lock fail CI; accepting one is an explicit flag.
    assert [s["run"] for s in jobs["audit"]["steps"] if "run" in s] == ["uv audit --locked"]

    lint_runs = "\n".join(s.get("run", "") for s in jobs["lint"]["steps"])
    for command in ("uv sync --locked", "ruff check", "ruff format --check", "mypy src tests"):
        assert command in lint_runs

    test = jobs["test"]
    env = test["env"]
    assert env["REQUIRE_SERVICES"] == "1"
    assert ("TEST_DATABASE_URL" in env) == (answers["database"] == "postgres")
    assert ("TEST_REDIS_URL" in env) == answers["redis"]
    assert any("pytest" in s.get("run", "") for s in test["steps"])

    for job in ("lint", "test"):
        setup_uv = next(
            s for s in jobs[job]["steps"] if s.get("uses", "").startswith("astral-sh/setup-uv@")
        )
        assert setup_uv["with"]["enable-cache"] is True


def check_services(test: dict[str, Any], answers: dict[str, Any]) -> None:
    """A service container per engine the bot uses, pinned, with a health check."""
    services = test.get("services", {})
    assert set(services) == {
        name
        for name, wanted in (
            ("postgres", answers["database"] == "postgres"),
            ("redis", answers["redis"]),
        )
        if wanted
    }
    for service in services.values():
        assert service["image"] in pinned_images()
        assert "--health-cmd" in service["options"]


@pytest.mark.parametrize("combo", PARAMS)
def test_deploy(rendered_matrix: RenderedMatrix, combo: matrix.Combination) -> None:
    answers = combo.answers
    found = workflows(rendered_matrix.tree(combo))
    if answers["deploy_mode"] != "actions":
        assert "deploy.yml" not in found and "manual-deploy.yml" not in found
        return
    slug = matrix.complete({**matrix.REQUIRED_ANSWERS, **answers})["project_slug"]

    deploy = found["deploy.yml"]
    assert set(deploy["on"]) == {"push"}
    assert deploy["on"]["push"]["branches"] == branches(answers)
    assert deploy["jobs"]["ci"]["uses"] == "./.github/workflows/ci.yml"
    job = deploy["jobs"]["deploy"]
    assert job["needs"] == "ci"
    environment = job["environment"]["name"]
    if answers["staging"]:
        assert environment == "${{ github.ref_name == 'main' && 'production' || 'staging' }}"
    else:
        assert environment == "production"
    assert job["concurrency"]["cancel-in-progress"] is False
    assert job["env"]["SERVICE"] == slug
    # The token is given to steps, never to the whole job.
    assert "RAILWAY_TOKEN" not in job["env"]
    assert job["env"]["HAS_RAILWAY_TOKEN"] == "${{ secrets.RAILWAY_TOKEN != '' }}"

    manual = found["manual-deploy.yml"]
    inputs = manual["on"]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["options"] == environments(answers)
    assert inputs["action"]["options"] == ["deploy", "redeploy"]
    manual_job = manual["jobs"]["deploy"]
    assert (
        manual_job["needs"] == "ci" and manual["jobs"]["ci"]["uses"] == "./.github/workflows/ci.yml"
    )
    assert manual_job["environment"]["name"] == "${{ inputs.environment }}"
    # Both workflows share the per-environment groups, so they never overlap.
    assert manual_job["concurrency"]["group"] == "deploy-${{ inputs.environment }}"
    assert job["concurrency"]["group"] == f"deploy-{environment}"
    assert manual_job["concurrency"]["cancel-in-progress"] is False

    for workflow in (deploy, manual):
        check_token_scope(workflow)
        check_newest_commit_gate(workflow["jobs"]["deploy"])
        scripts = "\n".join(run_scripts(workflow))
        # The bot's logs hold user data and a workflow log may be public.
        assert not re.search(r"^\s*railway logs|\$\(railway logs", scripts, re.M)
        assert 'railway up --ci --service "$SERVICE"' in scripts
        assert "--detach" not in scripts
        assert "--confirm-destructive" not in scripts
        assert "railway deployment list" in scripts
        has_apply = "railway config apply --yes" in scripts
        assert has_apply == (answers["railway_config"] == "iac")
        if has_apply:
            # apply exits 0 on a failed apply: a second plan must be empty,
            # and a plan that changes a database image stops the deploy.
            apply = scripts[scripts.index("railway config apply --yes") :]
            assert "railway config plan --detailed-exit-code" in apply
            assert "railway config plan --json" in scripts
            if answers["runtime"] == "python":
                # The token step's python3 gets the iac group (railway-sdk) only.
                syncs = re.findall(r"^\s*uv sync .*$", scripts, re.M)
                assert [s.split() for s in syncs] == [
                    ["uv", "sync", "--locked", "--only-group", "iac", "--quiet"]
                ], syncs
                assert "uv pip" not in scripts
    assert 'railway redeploy --service "$SERVICE" --yes' in "\n".join(run_scripts(manual))


def check_token_scope(workflow: dict[str, Any]) -> None:
    """RAILWAY_TOKEN only in the env of steps whose script runs `railway` against the API."""
    for job in workflow["jobs"].values():
        assert "RAILWAY_TOKEN" not in job.get("env", {})
        for step in job.get("steps", []):
            script = step.get("run", "")
            calls = [
                line
                for line in script.splitlines()
                if re.match(r"\s*(\w+=\S+\s+)*railway\s+(?!--version)", line)
                or "$(railway " in line
                or re.match(r"\s*railway\s.*\|\|", line)
                or "--railway-service" in line
            ]
            has_token = "RAILWAY_TOKEN" in step.get("env", {})
            assert has_token == bool(calls), (step.get("name"), has_token, calls)


def check_newest_commit_gate(job: dict[str, Any]) -> None:
    """A step compares the commit with its branch head; every later step waits for it.

    Only checks of the request may come first: nothing there reaches Railway.
    """
    steps = job["steps"]
    index = next(i for i, step in enumerate(steps) if step.get("id") == "newest")
    for step in steps[:index]:
        assert step["name"].startswith("Check "), step
        assert "railway" not in step["run"].replace("RAILWAY_TOKEN", "")
    newest = steps[index]
    assert "GITHUB_SHA" in newest["run"] and "branches/$GITHUB_REF_NAME" in newest["run"]
    assert "::notice::" in newest["run"], "a stale run says why it skips"
    for step in steps[index + 1 :]:
        assert "steps.newest.outputs.deploy == 'true'" in step.get("if", ""), step


# The image check of the deploy workflows, run on what `railway config plan
# --json` really prints: tests/data/railway/cli-plans.json, produced by the
# CLI's own diff and printed through its RunnerResponse (a change there has
# only summary, severity, kind and details).
CLI_PLANS = json.loads(
    (ROOT / "tests" / "data" / "railway" / "cli-plans.json").read_text(encoding="utf-8")
)["plans"]
# Which database each recorded plan must stop the deploy for ("" lets it go on).
IMAGE_VERDICTS = {
    "no-change": "",
    "postgres-ssl-17-to-18": "Postgres",
    "postgres-17-to-18": "Postgres",
    "postgres-16-alpine-to-18": "Postgres",
    "postgres-same-major": "",
    "redis-7-to-8": "Redis",
    "redis-same-major": "",
    "create-redis": "",
    "bot-variable": "",
    "bot-variable-deleted": "",
    "postgres-major-and-bot-variable": "Postgres",
}


def _image_filter(tree: Path) -> str:
    text = (tree / ".github/workflows/deploy.yml").read_text(encoding="utf-8")
    m = re.search(r"images=\"\$\(jq -r '(.*?)' \"\$RUNNER_TEMP/plan.json\"\)\"", text, re.S)
    assert m, "no image check in deploy.yml"
    return m[1]


def _jq(jq_filter: str, document: object) -> str:
    done = subprocess.run(
        ["jq", "-r", jq_filter],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_every_recorded_plan_has_a_verdict() -> None:
    assert set(IMAGE_VERDICTS) == set(CLI_PLANS)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
@pytest.mark.parametrize("name", sorted(IMAGE_VERDICTS))
def test_the_image_check_catches_a_database_image_change(
    rendered_matrix: RenderedMatrix, name: str
) -> None:
    combo = next(
        c
        for c in matrix.combinations()
        if c.answers["railway_config"] == "iac" and c.answers["deploy_mode"] == "actions"
    )
    tree = rendered_matrix.tree(combo)
    jq_filter = _image_filter(tree)
    # deploy.yml and manual-deploy.yml run the same check.
    manual = (tree / ".github/workflows/manual-deploy.yml").read_text(encoding="utf-8")
    assert jq_filter in manual
    found = _jq(jq_filter, CLI_PLANS[name]["output"])
    assert found == IMAGE_VERDICTS[name], (CLI_PLANS[name]["environment"], found)


# The whole apply step of both deploy workflows, run by bash as GitHub runs
# it, with a stand-in `railway` that answers `config plan --json` with a
# recorded plan and logs every call: a database image change must stop the
# step before `config apply --yes`, with a message naming the database.
FAKE_RAILWAY = """#!/bin/sh
echo "$*" >> "$CALLS"
case "$*" in
  "config plan --json") cat "$PLAN" ;;
  "config plan") jq -r .diff "$PLAN" ;;
esac
"""


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
@pytest.mark.parametrize("name", ["postgres-ssl-17-to-18", "redis-7-to-8", "bot-variable"])
def test_a_database_image_change_stops_the_deploy_before_apply(
    rendered_matrix: RenderedMatrix, name: str, tmp_path: Path
) -> None:
    combo = next(
        c
        for c in matrix.combinations()
        if c.answers["railway_config"] == "iac" and c.answers["deploy_mode"] == "actions"
    )
    found = workflows(rendered_matrix.tree(combo))
    (tmp_path / "bin").mkdir()
    railway = tmp_path / "bin" / "railway"
    railway.write_text(FAKE_RAILWAY, encoding="utf-8")
    railway.chmod(0o755)
    plan = tmp_path / "plan-fixture.json"
    plan.write_text(json.dumps(CLI_PLANS[name]["output"]), encoding="utf-8")
    for workflow in ("deploy.yml", "manual-deploy.yml"):
        script = next(s for s in run_scripts(found[workflow]) if "config plan --json" in s)
        calls = tmp_path / f"{workflow}.calls"
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            env={
                "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
                "RUNNER_TEMP": str(tmp_path),
                "CALLS": str(calls),
                "PLAN": str(plan),
            },
            capture_output=True,
            text=True,
        )
        ran = calls.read_text(encoding="utf-8").splitlines()
        database = IMAGE_VERDICTS[name]
        if database:
            assert done.returncode == 1, done
            assert f"::error::The plan changes the image of the database {database} " in (
                done.stdout
            )
            assert ran == ["config plan", "config plan --json"], ran
        else:
            assert done.returncode == 0, done
            assert "config apply --yes" in ran


@pytest.mark.parametrize("combo", PARAMS)
def test_backup_workflow(rendered_matrix: RenderedMatrix, combo: matrix.Combination) -> None:
    answers = combo.answers
    found = workflows(rendered_matrix.tree(combo))
    if not (answers.get("backups") and answers.get("backup_path") == "actions"):
        assert "backup.yml" not in found
        return
    assert answers["database"] == "postgres"  # copier.yml refuses SQLite here
    backup = found["backup.yml"]
    check_token_scope(backup)
    assert set(backup["on"]) == {"schedule", "workflow_dispatch"}
    assert len(backup["on"]["schedule"]) == 1
    job = backup["jobs"]["backup"]
    # One run per Railway environment, each with the secrets of its own
    # GitHub Environment, and neither cancels the other.
    expected = [{"railway": "production", "github": "backups"}]
    if answers["staging"]:
        expected.append({"railway": "staging", "github": "backups-staging"})
    assert job["strategy"]["matrix"] == {"include": expected}
    assert job["strategy"]["fail-fast"] is False
    assert job["environment"]["name"] == "${{ matrix.github }}"
    scripts = "\n".join(run_scripts(backup))
    text = (rendered_matrix.tree(combo) / ".github/workflows/backup.yml").read_text()
    # The read-only role's URL, never the owner's (scripts/backup.sh refuses a
    # role that can write: test_backup_restore.py).
    assert "secrets.BACKUP_DATABASE_URL" in text and "secrets.DATABASE_PUBLIC_URL" not in text
    assert "secrets.RAILWAY_TOKEN" not in text
    assert "railway ssh" not in text and "--railway-service" not in text
    assert "sh scripts/backup.sh --output-dir backups" in scripts
    steps = {step.get("name", step.get("uses", "").split("@")[0]): step for step in job["steps"]}
    names = list(steps)
    assert steps["Dump and verify"]["env"]["DATABASE_URL"] == "${{ secrets.BACKUP_DATABASE_URL }}"
    image = steps["Dump and verify"]["env"]["POSTGRES_IMAGE"]
    assert re.fullmatch(r"postgres:18-alpine@sha256:[0-9a-f]{64}", image), image
    assert image in pinned_images()
    # Every dump is encrypted with age to the recipients, unconditionally,
    # before the upload; no symmetric passphrase anywhere.
    assert "gpg" not in text and "passphrase" not in text.lower()
    assert job["env"]["BACKUP_AGE_RECIPIENTS"] == "${{ vars.BACKUP_AGE_RECIPIENTS }}"
    encrypt = steps["Encrypt"]
    assert "if" not in encrypt
    assert 'age --encrypt --recipients-file "$recipients"' in encrypt["run"]
    assert 'rm "$file"' in encrypt["run"]
    assert (
        names.index("Dump and verify")
        < names.index("Install age")
        < names.index("Encrypt")
        < names.index("actions/upload-artifact")
    )
    # age comes from its release archive, checked against the pinned SHA-256.
    install = steps["Install age"]
    assert install["env"] == {"AGE_URL": pinned_age()["url"], "AGE_SHA256": pinned_age()["sha256"]}
    assert re.fullmatch(r"[0-9a-f]{64}", install["env"]["AGE_SHA256"])
    assert "/releases/download/v" in install["env"]["AGE_URL"]
    run = install["run"]
    assert run.index("sha256sum --check --strict") < run.index("tar --extract")
    # The settings the workflow reads are the ones the runbook has the owner set.
    deployment = (rendered_matrix.tree(combo) / "DEPLOYMENT.md").read_text(encoding="utf-8")
    # (The alert job's webhook is the alerting chapter's.)
    read = set(re.findall(r"\$\{\{ (secrets|vars)\.(\w+)", text)) - {
        ("secrets", "ALERT_DISCORD_WEBHOOK_URL")
    }
    assert read == {
        ("secrets", "BACKUP_DATABASE_URL"),
        ("vars", "BACKUP_AGE_RECIPIENTS"),
        ("secrets", "BACKUP_HEARTBEAT_URL"),
    }
    kind = {"secrets": "secret", "vars": "variable"}
    for source, name in read:
        assert f"the {kind[source]} `{name}`" in deployment, name
        for entry in expected:
            assert f"gh {kind[source]} set {name} --env {entry['github']}" in deployment, name
    # The heartbeat is the last step and runs only when its secret is set:
    # a schedule GitHub disabled after 60 quiet days stops the pings.
    assert job["env"]["BACKUP_HEARTBEAT_URL"] == "${{ secrets.BACKUP_HEARTBEAT_URL }}"
    ping = job["steps"][-1]
    assert ping["if"] == "env.BACKUP_HEARTBEAT_URL != ''"
    # The URL goes to curl on stdin (test_backup_heartbeat_url_never_reaches_a_command_line).
    assert "curl --config - " in ping["run"] and "$BACKUP_HEARTBEAT_URL" in ping["run"]
    upload = next(
        s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")
    )
    # Two environments' artifacts never share a name.
    assert "${{ matrix.railway }}" in upload["with"]["name"]
    assert upload["with"]["retention-days"] and upload["with"]["if-no-files-found"] == "error"


@pytest.mark.parametrize("combo", PARAMS)
def test_workflow_security(rendered_matrix: RenderedMatrix, combo: matrix.Combination) -> None:
    tree = rendered_matrix.tree(combo)
    for name, workflow in workflows(tree).items():
        check_workflow_security(name, workflow)


def check_workflow_security(name: str, workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {}, f"{name}: nothing by default"
    for job_name, job in workflow["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{name}/{job_name} states its permissions"
        if name == "template-update.yml" and job_name == "publish":
            # It pushes one branch and opens one pull request; nothing else.
            # The job that runs the template's code (update) only reads.
            assert permissions == {"contents": "write", "pull-requests": "write"}
        else:
            assert set(permissions.values()) <= {"read", "none"}, (
                f"{name}/{job_name} writes nothing"
            )
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False
            # Values reach scripts through env:, never spliced into them.
            assert "${{" not in step.get("run", ""), f"{name}/{job_name}: expression in run:"
        for service in job.get("services", {}).values():
            assert service["image"] in pinned_images()


def used_actions(paths: list[Path]) -> set[tuple[str, str]]:
    """(ref, tag comment) of every `uses:` line of these workflows, local calls aside."""
    seen: set[tuple[str, str]] = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if (match := USES.match(line)) is None:
                continue
            ref = match["ref"]
            if ref.startswith("./"):
                continue
            seen.add((ref, (match["comment"] or "").strip()))
    return seen


def test_every_action_is_pinned_to_a_sha_in_pins(rendered_matrix: RenderedMatrix) -> None:
    """Each `uses:` line in every distinct workflow: a pinned SHA with its tag comment."""
    seen = used_actions(
        [
            path
            for tree in rendered_matrix.trees.values()
            for path in (tree / ".github" / "workflows").glob("*.yml")
        ]
    )
    check_pinned(seen)


def check_pinned(seen: set[tuple[str, str]]) -> None:
    assert seen, "no actions found"
    pins = pinned_actions()
    for ref, comment in sorted(seen):
        pinned = PINNED.match(ref)
        assert pinned, f"{ref} is not pinned to a 40-hex commit SHA"
        action = "/".join(pinned["action"].split("/")[:2])
        assert action in pins, f"{action} is not in includes/pins.jinja"
        sha, tag = pins[action]
        assert pinned["sha"] == sha, f"{ref}: not the SHA of includes/pins.jinja"
        assert comment == f"# {tag}", f"{ref}: the comment must name its tag ({tag})"


def test_images_in_workflows_are_pins(rendered_matrix: RenderedMatrix) -> None:
    images: set[str] = set()
    for tree in rendered_matrix.trees.values():
        for path in (tree / ".github" / "workflows").glob("*.yml"):
            images |= set(
                re.findall(r"(?m)^\s+(?:image|[A-Z_]+_IMAGE):\s*(\S+)$", path.read_text("utf-8"))
            )
    assert images and images <= pinned_images(), images - pinned_images()


@pytest.mark.parametrize("combo", PARAMS)
def test_dependabot(rendered_matrix: RenderedMatrix, combo: matrix.Combination) -> None:
    answers = combo.answers
    config = load(rendered_matrix.tree(combo) / ".github" / "dependabot.yml")
    assert config["version"] == 2
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    ecosystem = "npm" if answers["runtime"] == "node" else "uv"
    # compose.yaml's database images, pinned by digest, when it has any.
    services = answers["database"] == "postgres" or answers["redis"]
    compose = {"docker-compose"} if services else set()
    assert set(updates) == {ecosystem, "github-actions", "docker"} | compose
    if services:
        assert updates["docker-compose"]["directory"] == "/"
        assert (rendered_matrix.tree(combo) / "compose.yaml").is_file()
        # A new major of PostgreSQL or Redis changes the data's format: never a bump.
        ignored = {
            i["dependency-name"]: i["update-types"] for i in updates["docker-compose"]["ignore"]
        }
        wanted = {"postgres"} if answers["database"] == "postgres" else set()
        wanted |= {"redis"} if answers["redis"] else set()
        assert ignored == {name: ["version-update:semver-major"] for name in wanted}
    for update in updates.values():
        assert update["groups"], "updates arrive grouped"
        assert update["cooldown"]["default-days"] >= 7
        assert update.get("target-branch") == ("develop" if answers["staging"] else None)
    docker_dir = "/" if answers["builder"] == "dockerfile" else "/docker"
    assert updates["docker"]["directory"] == docker_dir
    dockerfile = rendered_matrix.tree(combo) / docker_dir.lstrip("/") / "Dockerfile"
    assert dockerfile.is_file(), f"dependabot watches {dockerfile}, which must exist"


@pytest.mark.parametrize(
    "combo", [p for p in PARAMS if p.values[0].answers["template_updates"]][:4]
)
def test_template_update_workflow(
    rendered_matrix: RenderedMatrix, combo: matrix.Combination
) -> None:
    """Weekly, on demand: the bot's own update script, in two jobs (and an alert).

    tests/test_update_security.py runs both jobs' scripts against malicious
    releases; here, the shape.
    """
    workflow = workflows(rendered_matrix.tree(combo))["template-update.yml"]
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert set(workflow["jobs"]) == {"update", "publish", "alert"}
    base = "develop" if combo.answers["staging"] else "main"
    for name in ("update", "publish"):
        job = workflow["jobs"][name]
        checkout = next(
            s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")
        )
        # The update merges against the history; credentials never stay on disk.
        assert checkout["with"] == {"ref": base, "fetch-depth": 0, "persist-credentials": False}
    job = workflow["jobs"]["update"]
    setup_uv = next(s for s in job["steps"] if s.get("uses", "").startswith("astral-sh/setup-uv@"))
    assert setup_uv["with"]["enable-cache"] is False
    assert "env" not in job
    scripts = "\n".join(run_scripts(workflow))
    assert "scripts/template-update.sh --patch" in scripts
    assert "scripts/template-update.sh --publish" in scripts
    assert 'gh pr create --base "$BASE"' in scripts and "gh pr edit" in scripts
    assert "git push" not in scripts, "the script pushes, with a lease"
    # Job 1's output, which the template's code wrote, cannot close a fence.
    assert "```" not in scripts
    publish = workflow["jobs"]["publish"]
    for step in publish["steps"]:
        if "run" in step and "gh " in step["run"]:
            assert step["env"]["GH_TOKEN"] == "${{ secrets.TEMPLATE_UPDATE_TOKEN || github.token }}"


@pytest.mark.parametrize("combo", PARAMS)
def test_failures_alert_on_discord(
    rendered_matrix: RenderedMatrix, combo: matrix.Combination
) -> None:
    """Each workflow that can fail unseen has one alert job, and only it reads the webhook."""
    tree = rendered_matrix.tree(combo)
    found = workflows(tree)
    for path, (watched, conditions) in ALERTING.items():
        name = path.rpartition("/")[2]
        if name not in found:
            continue
        jobs = found[name]["jobs"]
        alert = jobs["alert"]
        assert alert["needs"] == watched, name
        # always(): a job whose dependency failed is skipped without it.
        condition = alert["if"]
        assert condition.startswith("always() && (") and condition.endswith(")"), name
        assert set(condition[len("always() && (") : -1].split(" || ")) == conditions, name
        assert alert["permissions"] == {"contents": "read"}, name
        assert "environment" not in alert, f"{name}: the webhook is a repository secret"
        checkout, send = alert["steps"]
        assert checkout["with"]["sparse-checkout"] == "scripts/alert.sh", name
        assert send["run"] == "scripts/alert.sh", name
        assert (
            send["env"]["ALERT_DISCORD_WEBHOOK_URL"] == "${{ secrets.ALERT_DISCORD_WEBHOOK_URL }}"
        )
        assert send["env"]["ALERT_TITLE"], name
        # No other job, and no other step, sees the webhook.
        text = (tree / path).read_text(encoding="utf-8")
        assert text.count("secrets.ALERT_DISCORD_WEBHOOK_URL") == 1, name
    if "template-update.yml" in found:
        update = found["template-update.yml"]["jobs"]["update"]
        assert update["outputs"]["changed"] == "${{ steps.update.outputs.changed }}"
        assert update["outputs"]["conflicts"] == "${{ steps.update.outputs.conflicts }}"
        script = next(s["run"] for s in update["steps"] if s.get("id") == "update")
        assert 'if [ "$status" -eq 1 ]; then\n  echo "conflicts=true" >> "$GITHUB_OUTPUT"' in script
    if "deploy.yml" in found:
        env = found["deploy.yml"]["jobs"]["alert"]["steps"][1]["env"]
        assert env["ALERT_ENVIRONMENT"] == found["deploy.yml"]["jobs"]["deploy"]["env"]["TARGET"]


# ----------------------------------------------------------------- Node.js --
#: The npm commands of a Node repository's CI, per job, in order.
NODE_RUNS = {
    "lint": ["npm ci", "npm run lint", "npm run type-check"],
    "test": ["npm ci", "npm test"],
    "audit": ["npm audit"],
}
#: Words of the Python toolchain that a Node repository's CI must not hold.
PYTHON_TOOLS = re.compile(r"\b(?:uv|UV_\w+|ruff|mypy|pytest|REQUIRE_SERVICES)\b")


NODE_DEPLOYS = [
    p
    for p in PARAMS
    if p.values[0].answers["runtime"] == "node"
    and p.values[0].answers["deploy_mode"] == "actions"
    and p.values[0].answers["railway_config"] == "iac"
]


@cache
def pinned_tools() -> dict[str, str]:
    env = Environment(loader=FileSystemLoader(str(ROOT)))
    template = '{%- from "includes/pins.jinja" import tools with context -%}{{ tools | tojson }}'
    return json.loads(env.from_string(template).render(python_version="3.13"))  # type: ignore[no-any-return]


IAC_BOT = {"runtime": "python", "railway_config": "iac", "deploy_mode": "actions"}


def install_railway_sdk(tree: Path, runner_temp: Path) -> subprocess.CompletedProcess[str]:
    """Run deploy.yml's "Install railway-sdk" step as the runner would, in ``tree``."""
    workflow = load(tree / ".github" / "workflows" / "deploy.yml")
    (step,) = [
        s for s in workflow["jobs"]["deploy"]["steps"] if s.get("name") == "Install railway-sdk"
    ]
    runner_temp.mkdir(exist_ok=True)
    uv = ROOT / ".venv" / "bin"
    env = {
        **os.environ,
        "PATH": f"{uv}:{os.environ['PATH']}",
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_PATH": str(runner_temp / "github_path"),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    env.pop("VIRTUAL_ENV", None)
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]],
        cwd=tree, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_railway_sdk_is_installed_alone_from_the_lock_with_hashes(tree_for, tmp_path) -> None:
    """The interpreter the token step runs gets the iac group of uv.lock, each file hashed."""
    tree = tree_for(IAC_BOT)
    pyproject = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
    groups = pyproject["dependency-groups"]
    assert groups["iac"] == [f"railway-sdk=={pinned_tools()['railway_sdk']}"]
    assert {"include-group": "iac"} in groups["dev"], "uv sync (dev) still installs the SDK"

    done = install_railway_sdk(tree, tmp_path / "runner")
    assert done.returncode == 0, done.stderr
    venv = tmp_path / "runner" / "iac"
    assert (tmp_path / "runner" / "github_path").read_text() == f"{venv}/bin\n"
    python = venv / "bin" / "python3"
    subprocess.run([str(python), "-c", "import railway_sdk"], check=True)
    for other in ("pytest", "discord", "ruff"):
        absent = subprocess.run([str(python), "-c", f"import {other}"], capture_output=True)
        assert absent.returncode != 0, f"{other} reached the token step's interpreter"

    # A file that does not match its hash in uv.lock is refused.
    tampered = tmp_path / "tampered"
    shutil.copytree(tree, tampered, ignore=shutil.ignore_patterns(".venv"))
    lock = (tampered / "uv.lock").read_text(encoding="utf-8")
    block = lock[lock.index('\n[[package]]\nname = "railway-sdk"') :]
    block = block[: block.index("\n[[package]]", 1)]
    wrong = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, block)
    assert wrong != block
    (tampered / "uv.lock").write_text(lock.replace(block, wrong), encoding="utf-8")
    refused = install_railway_sdk(tampered, tmp_path / "runner-tampered")
    assert refused.returncode != 0
    assert "hash" in refused.stderr.lower(), refused.stderr


@pytest.mark.parametrize("combo", NODE_DEPLOYS)
def test_node_deploy_applies_railway_ts(
    rendered_matrix: RenderedMatrix, combo: matrix.Combination
) -> None:
    """The deploy workflows give the CLI node and the railway SDK, then the same plan and apply."""
    tree = rendered_matrix.tree(combo)
    found = workflows(tree)
    sha, _ = pinned_actions()["actions/setup-node"]
    for name in ("deploy.yml", "manual-deploy.yml"):
        text = (tree / ".github" / "workflows" / name).read_text(encoding="utf-8")
        assert not PYTHON_TOOLS.findall(text) and "python" not in text, name
        assert "railway.py" not in text, name
        workflow = found[name]
        check_token_scope(workflow)
        steps = workflow["jobs"]["deploy"]["steps"]
        names = [s.get("name") or s.get("uses", "").split("@")[0] for s in steps]
        apply = names.index("Apply .railway/railway.ts")
        # Node from .nvmrc, then the locked packages, before the CLI runs.
        assert names[apply - 2 : apply] == ["actions/setup-node", "Install dependencies"], names
        assert steps[apply - 2]["uses"] == f"actions/setup-node@{sha}"
        assert steps[apply - 2]["with"]["node-version-file"] == ".nvmrc"
        assert steps[apply - 1]["run"] == "npm ci --ignore-scripts"
        assert "RAILWAY_TOKEN" not in steps[apply - 1].get("env", {})
        assert names.index("Install the Railway CLI") < apply
        script = steps[apply]["run"]
        assert "railway config plan --json" in script and "railway config apply --yes" in script
        assert "railway config plan --detailed-exit-code" in script
        assert "--confirm-destructive" not in script
        # railway.ts reads the environment it targets from here.
        env = workflow["jobs"]["deploy"]["env"]
        assert env["IAC_ENVIRONMENT"] == env["TARGET"]


def check_node_ci(tree: Path, answers: dict[str, Any]) -> None:
    """npm ci, lint, type-check, test and audit with the Node of .nvmrc; no Python tool."""
    answers = matrix.complete({**matrix.REQUIRED_ANSWERS, **answers})
    path = tree / ".github" / "workflows" / "ci.yml"
    text = path.read_text(encoding="utf-8")
    ci = load(path)
    check_workflow_security("ci.yml", ci)

    # Not one Python tool: a Node repository has no uv.lock, ruff or pytest.
    assert not PYTHON_TOOLS.findall(text), sorted(set(PYTHON_TOOLS.findall(text)))
    assert ci["env"] == {"FORCE_COLOR": "1"}

    jobs = ci["jobs"]
    for job, runs in NODE_RUNS.items():
        steps = [s for s in jobs[job]["steps"] if "run" in s]
        if job == "test" and matrix.private_backups(answers):
            # The reference age tool, which the backup tests then require.
            age = steps.pop(1)
            assert age["name"] == "Install age", age
            assert age["run"].endswith("--no-install-recommends age"), age
            assert steps[-1]["env"] == {"REQUIRE_AGE": "1"}
        assert [s["run"] for s in steps] == runs, job
    if answers["railway_config"] == "iac":
        # .railway/railway.ts evaluated as the CLI evaluates it, with node and
        # the railway SDK from npm ci (test_railway_config.py runs this step).
        steps = jobs["railway-config"]["steps"]
        sha, _ = pinned_actions()["actions/setup-node"]
        assert [s.get("uses", s.get("run", "").split("\n")[0]) for s in steps][1:3] == [
            f"actions/setup-node@{sha}",
            "npm ci --ignore-scripts",
        ]
        script = steps[-1]["run"]
        assert "--experimental-strip-types" in script and "mod.default({})" in script

    # Every npm script CI runs is one the render's package.json defines.
    scripts = json.loads((tree / "package.json").read_text(encoding="utf-8"))["scripts"]
    for command in (run for runs in NODE_RUNS.values() for run in runs):
        if command in ("npm ci", "npm audit"):
            continue  # npm's own commands
        script = command.removeprefix("npm run ").removeprefix("npm ")
        assert script in scripts, f"{command}: no such script in package.json"

    # The URLs that point the Node suite at the service containers (its
    # defaults name a local server).
    env = jobs["test"].get("env", {})
    expected_env = {}
    if answers["database"] == "postgres":
        expected_env["TEST_DATABASE_URL"] = "postgresql://bot:bot@127.0.0.1:5432/bot_test"
    if answers["redis"]:
        expected_env["TEST_REDIS_URL"] = "redis://127.0.0.1:6379/0"
    assert env == expected_env

    # The Node of .nvmrc, from setup-node pinned by SHA with its tag; npm's
    # cache where dependencies are installed, none in the audit job.
    assert (tree / ".nvmrc").is_file()
    seen = used_actions([path])
    check_pinned(seen)
    sha, tag = pinned_actions()["actions/setup-node"]
    assert (f"actions/setup-node@{sha}", f"# {tag}") in seen
    for job in NODE_RUNS:
        setup = [s for s in jobs[job]["steps"] if s.get("uses", "").startswith("actions/setup-")]
        assert [s["uses"] for s in setup] == [f"actions/setup-node@{sha}"], job
        cache = {"cache": "npm"} if job != "audit" else {}
        assert setup[0]["with"] == {"node-version-file": ".nvmrc", **cache}, job


@pytest.mark.parametrize("wanted", NODE_PARAMS)
def test_node_dependabot_and_template_update(tree_for, wanted: dict[str, Any]) -> None:
    """Node majors held back, and the update job relocks with the Node of .nvmrc."""
    tree = tree_for(wanted)
    config = load(tree / ".github" / "dependabot.yml")
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    # A new Node major moves .nvmrc, engines and the image together, on purpose.
    ignored = {(i["dependency-name"], *i["update-types"]) for i in updates["docker"]["ignore"]}
    assert ignored == {("node", "version-update:semver-major")}
    assert updates["npm"]["ignore"] == [
        {"dependency-name": "@types/node", "update-types": ["version-update:semver-major"]}
    ]
    assert "@types/node" in json.loads((tree / "package.json").read_text())["devDependencies"]

    workflow = workflows(tree)["template-update.yml"]
    steps = workflow["jobs"]["update"]["steps"]
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    # uv installs Copier; Node relocks package-lock.json. Neither caches: the
    # job's patch is pushed by the next.
    assert uses == [
        "actions/checkout",
        "astral-sh/setup-uv",
        "actions/setup-node",
        "actions/upload-artifact",
    ]
    setup_node = next(s for s in steps if s.get("uses", "").startswith("actions/setup-node@"))
    assert setup_node["with"] == {"node-version-file": ".nvmrc"}


def test_backup_heartbeat_url_never_reaches_a_command_line(tmp_path: Path) -> None:
    """The heartbeat step, run with bash and curl against a local server.

    A heartbeat URL is a bearer secret (whoever has it can fake the pings),
    so it goes to curl on stdin, as scripts/alert.sh does with its webhook.
    """
    combo = next(
        c
        for c in matrix.combinations()
        if c.answers.get("backups") and c.answers.get("backup_path") == "actions"
    )
    tree = matrix.render(combo.answers, tmp_path / "bot")
    [ping] = [
        step
        for step in workflows(tree)["backup.yml"]["jobs"]["backup"]["steps"]
        if "BACKUP_HEARTBEAT_URL" in step.get("run", "")
    ]
    token = f"heartbeat-{uuid.uuid4().hex}"
    seen: list[tuple[str, bool]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            # curl is still running: its command line is in /proc now.
            in_argv = any(
                token.encode() in cmdline.read_bytes()
                for cmdline in Path("/proc").glob("[0-9]*/cmdline")
                if cmdline.exists()
            )
            seen.append((self.path, in_argv))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/ping/{token}"
        # GitHub runs a step's script with `bash -e {0}`.
        result = subprocess.run(
            ["bash", "-e", "-c", ping["run"]],
            env={"PATH": os.environ["PATH"], "BACKUP_HEARTBEAT_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert seen == [(f"/ping/{token}", False)]
