"""The weekly template update runs a template release's code with nothing worth stealing.

A template release is code: Copier renders it, and the update then runs the
project's own tools on the result (`uv lock` imports a pyproject build
backend; npm obeys a project `.npmrc`, whose `git=` names a program it runs
for a git dependency, even with `--ignore-scripts`). So the workflow is split
in two: `update` (read-only, no token) runs `scripts/template-update.sh
--patch` in a throwaway clone with git hooks off and hands over a patch;
`publish` (write) commits and pushes it with `--publish`, running nothing of
the template's.

These tests play a malicious release against the real script, Copier and
tools, in the environment the rendered workflow gives each job: a secret or
`github.token` the workflow maps into a job's environment becomes a sentinel
value there, and nothing else from this machine's environment that looks
like a token is passed on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from test_generated_node import refresh_node_locks
from test_generated_python import _environment
from test_update import COPIER, GIT_ENV, commit_all, generate, run, template_repo  # noqa: F401
from test_workflows import workflows

import matrix

ROOT = matrix.ROOT
SENTINEL = "ghs_sentinel0template0update0token0"
#: The identity the workflow commits as; the publish step trusts a branch
#: whose commits are all its own.
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
BOTS = {
    "python": {"runtime": "python", "database": "sqlite", "redis": False, "backups": False},
    "node": {"runtime": "node", "database": "sqlite", "redis": False, "backups": False},
}
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


# ------------------------------------------------------------ job environment --
def resolve(value: Any) -> str:
    """A workflow `env:` value as the runner would set it, secrets as the sentinel."""
    text = str(value)

    def expression(match: re.Match[str]) -> str:
        inner = match.group(1)
        return SENTINEL if "secrets." in inner or "github.token" in inner else ""

    return EXPRESSION.sub(expression, text)


def declared_env(workflow: dict[str, Any], job: str, step_id: str) -> dict[str, str]:
    """Every variable the workflow gives one step: workflow, job and step `env:`."""
    spec = workflow["jobs"][job]
    step = next(s for s in spec["steps"] if s.get("id") == step_id)
    declared = {**workflow.get("env", {}), **spec.get("env", {}), **step.get("env", {})}
    return {key: resolve(value) for key, value in declared.items()}


def runner_env(base: dict[str, str], declared: dict[str, str]) -> dict[str, str]:
    """A job's environment: the machine's, less anything token-like, plus what the job declares."""
    clean = {k: v for k, v in base.items() if "TOKEN" not in k.upper()}
    return {**clean, **declared, **GIT_ENV}


def base_env(bot: Path, runtime: str) -> dict[str, str]:
    if runtime == "node":
        return {**refresh_node_locks.npm_env(), "npm_config_offline": "true"}
    answers = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))
    return _environment({"python_version": answers["python_version"], **answers})


def script(bot: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["scripts/template-update.sh", *args],
        cwd=bot,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )


# -------------------------------------------------------------- the workflow --
@pytest.mark.parametrize("runtime", sorted(BOTS))
def test_the_job_that_runs_template_code_holds_no_token(tree_for, runtime: str) -> None:
    """Read the rendered workflow: job 1 reads only, maps no secret; job 2 runs no template code."""
    for staging in (True, False):
        tree = tree_for({**BOTS[runtime], "staging": staging})
        text = (tree / ".github/workflows/template-update.yml").read_text(encoding="utf-8")
        workflow = yaml.safe_load(text)
        assert set(workflow["jobs"]) == {"update", "publish", "alert"}
        update, publish = workflow["jobs"]["update"], workflow["jobs"]["publish"]
        assert update["permissions"] == {"contents": "read"}
        # Nothing in job 1 names a secret or the workflow's token.
        update_text = yaml.safe_dump(update)
        assert "secrets." not in update_text and "github.token" not in update_text
        assert SENTINEL not in json.dumps(declared_env(workflow, "update", "update"))
        # The resolver does see a token where one is mapped: job 2's push.
        assert SENTINEL in declared_env(workflow, "publish", "publish").values()
        assert publish["permissions"] == {"contents": "write", "pull-requests": "write"}
        # Its token can live in an environment limited to the default branch.
        assert publish["environment"] == "template-update"
        assert publish["needs"] == "update"
        # Job 2 installs nothing and runs nothing but the base branch's own
        # script, git and gh: no setup action, no Copier, no npm, no uv.
        uses = [s["uses"].split("@")[0] for s in publish["steps"] if "uses" in s]
        assert uses == ["actions/checkout", "actions/download-artifact"]
        runs = "\n".join(s["run"] for s in publish["steps"] if "run" in s)
        assert not re.search(r"\b(copier|uvx?|npm|npx|node)\b", runs), runs
        assert "scripts/template-update.sh --publish" in runs
        # Both jobs start from the branch updates target: develop with staging.
        base = "develop" if staging else "main"
        for job in (update, publish):
            checkout = next(
                s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")
            )
            assert checkout["with"]["ref"] == base
            assert checkout["with"]["persist-credentials"] is False
        assert publish["env"]["BASE"] == base
        assert '--base "$BASE"' in runs
        # Copier comes from a hashed requirements file, never resolved.
        install = "\n".join(s.get("run", "") for s in update["steps"])
        assert "--require-hashes" in install
        assert "-r .github/template-update-requirements.txt" in install
        assert "uvx" not in install


def test_an_unset_update_token_that_meets_a_workflow_change_alerts(tree_for) -> None:
    workflow = workflows(tree_for(BOTS["python"]))["template-update.yml"]
    alert = workflow["jobs"]["alert"]
    assert alert["needs"] == ["update", "publish"]
    assert "contains(needs.*.result, 'failure')" in alert["if"]
    title = alert["steps"][1]["env"]["ALERT_TITLE"]
    assert "needs.publish.outputs.blocked == 'workflows'" in title
    assert "TEMPLATE_UPDATE_TOKEN" in title
    publish = workflow["jobs"]["publish"]
    assert publish["outputs"]["blocked"] == "${{ steps.publish.outputs.blocked }}"
    step = next(s for s in publish["steps"] if s.get("id") == "publish")
    assert step["env"]["TEMPLATE_UPDATE_TOKEN_SET"] == "${{ secrets.TEMPLATE_UPDATE_TOKEN != '' }}"


def test_copier_is_installed_from_hashed_pins(tree_for) -> None:
    """The bot's requirements file is the template's exported lock, every line hashed."""
    tree = tree_for(BOTS["python"])
    rendered = (tree / ".github/template-update-requirements.txt").read_text(encoding="utf-8")
    kept = (ROOT / "locks/copier/requirements.txt").read_text(encoding="utf-8")
    assert rendered == kept
    pins = (ROOT / "includes/pins.jinja").read_text(encoding="utf-8")
    copier = re.search(r'"copier": "([^"]+)"', pins)
    assert copier and f"\ncopier=={copier.group(1)} \\\n" in "\n" + kept
    hashed = re.compile(
        r"^[a-z0-9][a-z0-9._-]*==\S+(?: ;[^\\]*)? \\\n(?:    --hash=\S+(?: \\)?\n)+", re.M
    )
    requirements = hashed.findall(kept)
    named = re.findall(r"^[a-z0-9][a-z0-9._-]*==", kept, re.M)
    assert requirements and len(requirements) == len(named), "every requirement has hashes"
    # The file is what uv exports from the kept lock, offline, to the byte.
    exported = subprocess.run(
        [str(Path(COPIER).parent / "uv"), "export", "--frozen", "--no-emit-project",
         "--no-header", "--quiet", "--directory", str(ROOT / "locks/copier")],
        capture_output=True, text=True, check=True, env={**os.environ, "UV_OFFLINE": "1"},
    ).stdout  # fmt: skip
    assert exported == kept, "run the export in locks/copier/README.md"


# ----------------------------------------------------------------- .git guard --
def test_no_template_path_renders_into_git() -> None:
    """No path of template/ renders to .git/, under any combination; Copier excludes it too."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    paths = {
        relpath: env.from_string(relpath)
        for p in (ROOT / "template").rglob("*")
        if "{" in (relpath := p.relative_to(ROOT / "template").as_posix())
        or ".git" in relpath.split("/")
    }
    assert paths
    for combo in matrix.combinations():
        context = matrix.complete({**matrix.REQUIRED_ANSWERS, **combo.answers})
        context["_copier_conf"] = {"answers_file": ".copier-answers.yml"}
        for path, template in paths.items():
            rendered = template.render(**context)
            parts = [p for p in rendered.split("/") if p]
            assert ".git" not in parts, f"{path} renders to {rendered} for {combo.id}"
    settings = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    assert ".git" in settings["_exclude"]


def test_copier_drops_a_file_the_template_renders_into_git(tmp_path: Path) -> None:
    """The real Copier, on a copy of this template given a path into .git/."""
    src = tmp_path / "template"
    shutil.copytree(ROOT, src, ignore=matrix.NOT_THE_TEMPLATE)
    hook = src / "template" / "{{ '.git' }}" / "hooks" / "pre-commit"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    hook.chmod(0o755)
    dst = matrix.render(BOTS["python"], tmp_path / "bot", src=src)
    assert (dst / "pyproject.toml").is_file()
    assert not (dst / ".git").exists(), "Copier rendered a path into .git/"


# ------------------------------------------------------------ malicious releases --
def release(repo: Path, files: dict[str, str], *, edits: list[tuple[str, str, str]]) -> None:
    """Commit a template release: new files (a ``+x:`` prefix makes one executable), text edits.

    The release also takes `.git` out of copier.yml's `_exclude`, as a
    release that means harm would.
    """
    for relpath, content in files.items():
        executable = content.startswith("+x:")
        path = repo / "template" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content.removeprefix("+x:"), encoding="utf-8")
        if executable:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    for relpath, old, new in edits:
        path = repo / "template" / relpath
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{relpath} no longer has {old!r}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    copier_yml = repo / "copier.yml"
    copier_yml.write_text(
        copier_yml.read_text(encoding="utf-8").replace('  - ".git"\n', ""), encoding="utf-8"
    )
    commit_all(repo, "A release that means harm")


@pytest.fixture
def template_clone(template_repo: Path, tmp_path: Path) -> Path:  # noqa: F811
    repo = tmp_path / "template" / "copier-railway-bot"
    run("git", "clone", "-q", "--no-local", str(template_repo), str(repo), cwd=tmp_path)
    return repo


def job_one_env(bot: Path, runtime: str) -> dict[str, str]:
    workflow = yaml.safe_load(
        (bot / ".github/workflows/template-update.yml").read_text(encoding="utf-8")
    )
    env = runner_env(base_env(bot, runtime), declared_env(workflow, "update", "update"))
    # The workflow's run step names the Copier it installed from hashes.
    env["TEMPLATE_UPDATE_COPIER"] = COPIER
    return env


@pytest.mark.slow
@pytest.mark.parametrize("runtime", sorted(BOTS))
def test_a_hook_written_into_git_never_runs_and_fails_the_job(
    template_clone: Path, tmp_path: Path, runtime: str
) -> None:
    bot = generate(template_clone, tmp_path / "bot", ref="HEAD", **BOTS[runtime])
    marker = tmp_path / "hook-ran"
    hook = f"+x:#!/bin/sh\nenv > {marker}\n"
    release(template_clone, {"{{ '.git' }}/hooks/pre-commit": hook,
                             "{{ '.git' }}/hooks/post-checkout": hook}, edits=[])  # fmt: skip

    # The PoC is live: the old job's steps (update in place, then commit)
    # run the hook.
    control = tmp_path / "control"
    run("git", "clone", "-q", str(bot), str(control), cwd=tmp_path)
    run(COPIER, "update", "--defaults", "--skip-answered", "--vcs-ref", "HEAD", cwd=control)
    assert (control / ".git/hooks/pre-commit").is_file()
    commit_all(control, "The old job's commit")
    assert marker.is_file(), "the release's hook did not run in the old flow"
    marker.unlink()

    out = tmp_path / "out"
    proc = script(bot, "--patch", str(out), "--vcs-ref", "HEAD", env=job_one_env(bot, runtime))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "wrote into .git/" in output and "hooks/pre-commit" in output, output
    assert not marker.exists(), "a hook the release wrote ran"
    assert not (bot / ".git/hooks/pre-commit").exists(), "the bot's own .git was touched"
    assert not (out / "update.patch").exists(), "a patch was handed over"
    assert run("git", "status", "--porcelain", cwd=bot) == ""


@pytest.mark.slow
@pytest.mark.parametrize("runtime", sorted(BOTS))
def test_a_build_backend_or_npm_git_program_finds_no_token(
    template_clone: Path, tmp_path: Path, runtime: str
) -> None:
    bot = generate(template_clone, tmp_path / "bot", ref="HEAD", **BOTS[runtime])
    record = tmp_path / "poc-env.txt"
    if runtime == "python":
        # uv lock imports an in-tree build backend to read dynamic metadata.
        pyproject = "{% if runtime == 'python' %}pyproject.toml{% endif %}.jinja"
        backend = f"import os\nwith open({str(record)!r}, 'w') as f:\n"
        backend += "    f.write(repr(dict(os.environ)))\n"
        release(
            template_clone,
            {"{% if runtime == 'python' %}poc_backend.py{% endif %}": backend},
            edits=[(pyproject, 'version = "0.1.0"\n', 'dynamic = ["version"]\n'),
                   (pyproject,
                    'requires = ["uv_build>=0.13.9,<0.14"]\nbuild-backend = "uv_build"\n',
                    'requires = []\nbuild-backend = "poc_backend"\nbackend-path = ["."]\n')],
        )  # fmt: skip
    else:
        # npm runs the program a project .npmrc names as git= to fetch a git
        # dependency, --ignore-scripts and --package-lock-only or not.
        dep = tmp_path / "dep"
        dep.mkdir()
        (dep / "package.json").write_text('{"name": "poc-dep", "version": "1.0.0"}\n')
        run("git", "init", "-q", "-b", "main", cwd=dep)
        commit_all(dep, "A dependency fetched with git")
        manifest = "{% if runtime == 'node' %}package.json{% endif %}.jinja"
        release(
            template_clone,
            {"{% if runtime == 'node' %}.npmrc{% endif %}": "git=./poc.sh\n",
             "{% if runtime == 'node' %}poc.sh{% endif %}":
                 f'+x:#!/bin/sh\nenv > {record}\nexec git "$@"\n'},
            edits=[(manifest, '  "dependencies": {\n',
                    f'  "dependencies": {{\n    "poc-dep": "git+file://{dep}",\n')],
        )  # fmt: skip

    out = tmp_path / "out"
    env = job_one_env(bot, runtime)
    proc = script(bot, "--patch", str(out), "--vcs-ref", "HEAD", env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output
    assert record.is_file(), f"the proof of concept never ran:\n{output}"
    seen = record.read_text(encoding="utf-8")
    assert SENTINEL not in seen, "a token reached the template's code"
    assert not re.search(r"\b(GH|GITHUB|TEMPLATE_UPDATE)_TOKEN\b", seen), seen
    # The update itself went through, into a patch, not into the checkout.
    assert (out / "update.patch").stat().st_size > 0
    assert run("git", "status", "--porcelain", cwd=bot) == ""


# -------------------------------------------------------------------- publish --
def published_bot(tree: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A committed render with a bare origin holding its main branch."""
    origin = tmp_path / "origin.git"
    run("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    bot = shutil.copytree(tree, tmp_path / "bot")
    run("git", "init", "-q", "-b", "main", cwd=bot)
    commit_all(bot, "The bot as generated")
    run("git", "remote", "add", "origin", str(origin), cwd=bot)
    run("git", "push", "-q", "origin", "main", cwd=bot)
    return bot, origin


def make_patch(bot: Path, out: Path, relpath: str, line: str) -> None:
    """What job 1 hands over: a binary diff against the base commit.

    The bot goes back to main first: job 2 starts from a fresh checkout of it.
    """
    run("git", "switch", "-q", "main", cwd=bot)
    path = bot / relpath
    path.write_text(path.read_text(encoding="utf-8") + line, encoding="utf-8")
    run("git", "add", "-A", cwd=bot)
    out.mkdir(exist_ok=True)
    patch = run("git", "diff", "--cached", "--binary", "--full-index", "HEAD", cwd=bot)
    (out / "update.patch").write_text(patch, encoding="utf-8")
    run("git", "reset", "-q", "--hard", cwd=bot)


def branch_head(origin: Path, branch: str = "template-update") -> str:
    return run("git", "rev-parse", "--verify", "-q", branch, cwd=origin, ok=False).strip()


def publish_env(token_set: bool, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "TOKEN" not in k.upper()}
    return {**env, "TEMPLATE_UPDATE_TOKEN_SET": str(token_set).lower(),
            "GITHUB_OUTPUT": str(tmp_path / "github-output")}  # fmt: skip


@pytest.mark.parametrize("runtime", sorted(BOTS))
def test_publish_refuses_a_workflow_change_without_the_update_token(
    tree_for, tmp_path: Path, runtime: str
) -> None:
    bot, origin = published_bot(tree_for(BOTS[runtime]), tmp_path)
    out = tmp_path / "update"
    make_patch(bot, out, ".github/workflows/ci.yml", "# a newer action pin\n")

    proc = script(bot, "--publish", str(out), env=publish_env(False, tmp_path))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "changes .github/workflows" in output and "TEMPLATE_UPDATE_TOKEN" in output, output
    assert "Workflows" in output and "Pull requests" in output and "Contents" in output, output
    assert "blocked=workflows" in (tmp_path / "github-output").read_text(encoding="utf-8")
    assert branch_head(origin) == "", "nothing is pushed"

    # With the token the same patch goes out, as one commit on the base.
    proc = script(bot, "--publish", str(out), env=publish_env(True, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head = branch_head(origin)
    assert run("git", "rev-parse", f"{head}^", cwd=origin).strip() == branch_head(origin, "main")
    changed = run("git", "diff", "--name-only", f"{head}^", head, cwd=origin).split()
    assert changed == [".github/workflows/ci.yml"]
    assert run("git", "log", "-1", "--format=%ae %ce", head, cwd=origin).split() == [BOT_EMAIL] * 2


@pytest.mark.parametrize("runtime", sorted(BOTS))
def test_publish_replaces_its_own_branch_but_never_a_maintainers_commit(
    tree_for, tmp_path: Path, runtime: str
) -> None:
    bot, origin = published_bot(tree_for(BOTS[runtime]), tmp_path)
    out = tmp_path / "update"
    make_patch(bot, out, "DEPLOYMENT.md", "\nFirst week.\n")
    assert script(bot, "--publish", str(out), env=publish_env(False, tmp_path)).returncode == 0
    first = branch_head(origin)

    # A newer update replaces the workflow's own commit.
    make_patch(bot, out, "DEPLOYMENT.md", "\nSecond week.\n")
    proc = script(bot, "--publish", str(out), env=publish_env(False, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    second = branch_head(origin)
    assert second != first
    text = run("git", "show", f"{second}:DEPLOYMENT.md", cwd=origin)
    assert "Second week." in text and "First week." not in text

    # A maintainer resolves something on the branch; the next run keeps off.
    maintainer = tmp_path / "maintainer"
    run("git", "clone", "-q", "-b", "template-update", str(origin), str(maintainer), cwd=tmp_path)
    (maintainer / "NOTES.md").write_text("Resolved by hand.\n", encoding="utf-8")
    commit_all(maintainer, "Resolve the update by hand")
    run("git", "push", "-q", "origin", "template-update", cwd=maintainer)
    theirs = branch_head(origin)
    make_patch(bot, out, "DEPLOYMENT.md", "\nThird week.\n")
    proc = script(bot, "--publish", str(out), env=publish_env(False, tmp_path))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "owner@example.com" in output and "not the workflow's" in output, output
    assert branch_head(origin) == theirs, "a maintainer's commit was overwritten"


@pytest.mark.parametrize("runtime", sorted(BOTS))
def test_an_unexpected_failure_exits_2_not_1(tree_for, tmp_path: Path, runtime: str) -> None:
    """1 means conflicts for a person; anything that broke is 2."""
    outside = tmp_path / "not-a-repository"
    shutil.copytree(tree_for(BOTS[runtime]) / "scripts", outside / "scripts")
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    proc = script(outside, "--check", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unexpected failure" in proc.stderr, proc.stderr


def test_a_broken_conflict_in_pyproject_exits_2(tree_for, tmp_path: Path) -> None:
    """A conflict block with no end crashed the list merge, which then read as 'conflicts'."""
    bot = shutil.copytree(tree_for(BOTS["python"]), tmp_path / "bot")
    run("git", "init", "-q", "-b", "main", cwd=bot)
    commit_all(bot, "The bot as generated")
    pyproject = bot / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text(encoding="utf-8") + "<<<<<<< before updating\n", encoding="utf-8"
    )
    proc = script(bot, "--check", env=base_env(bot, "python"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unexpected failure" in proc.stderr, proc.stderr


@pytest.mark.parametrize("runtime", sorted(BOTS))
def test_publish_applies_no_patch_into_git(tree_for, tmp_path: Path, runtime: str) -> None:
    """A patch is data: one that writes a hook is refused by git apply, and nothing is pushed."""
    bot, origin = published_bot(tree_for(BOTS[runtime]), tmp_path)
    out = tmp_path / "update"
    out.mkdir()
    (out / "update.patch").write_text(
        "diff --git a/.git/hooks/pre-commit b/.git/hooks/pre-commit\n"
        "new file mode 100755\n"
        "--- /dev/null\n"
        "+++ b/.git/hooks/pre-commit\n"
        "@@ -0,0 +1 @@\n"
        "+touch hook-ran\n",
        encoding="utf-8",
    )
    proc = script(bot, "--publish", str(out), env=publish_env(True, tmp_path))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "invalid path '.git/hooks/pre-commit'" in output, output
    assert not (bot / ".git/hooks/pre-commit").exists()
    assert branch_head(origin) == ""
