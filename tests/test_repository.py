"""The template repository holds itself to the standards it generates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import linters
import matrix

ROOT = linters.ROOT


def _files(*patterns: str) -> list[Path]:
    return sorted(p for pattern in patterns for p in ROOT.glob(pattern) if p.is_file())


CHECKS = {
    "ruff-check": ["tests/**/*.py", "benchmarks/*.py", "hooks/*.py"],
    "ruff-format": ["tests/**/*.py", "benchmarks/*.py", "hooks/*.py"],
    "yamllint": ["copier.yml", ".pre-commit-config.yaml", ".github/**/*.yml", "tests/lint/*.yml"],
    "actionlint": [".github/workflows/*.yml"],
    "zizmor": [".github/workflows/*.yml"],
    "workflow-schema": [".github/workflows/*.yml"],
    "dependabot-schema": [".github/dependabot.yml"],
    "shellcheck": [".ci/run", "tests/images/*.sh"],
    "taplo-lint": ["pyproject.toml", "tests/lint/*.toml"],
    "markdown": ["README.md", "CHANGELOG.md", "docs/**/*.md", "tests/data/**/*.md"],
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_repository_files_lint_clean(name: str) -> None:
    files = _files(*CHECKS[name])
    assert files, f"no files for {name}"
    linter = next(linter for linter in linters.LINTERS if linter.name == name)
    findings = linter.run(files)
    assert not findings, "\n\n".join(findings)


def test_quick_start_is_two_commands_that_generate_and_test() -> None:
    commands = matrix.quick_start()
    assert len(commands) == 2, commands
    assert "copier" in commands[0] and " copy " in commands[0]
    assert commands[1].endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "## Quick start" in script, ".ci/run must read the commands from README.md"


def test_pre_commit_hooks_pass_on_the_repository(tmp_path: Path) -> None:
    """The hooks a contributor installs run the same linters, and pass."""
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    pre_commit = str(Path(sys.executable).parent / "pre-commit")
    subprocess.run(
        [pre_commit, "validate-config", ".pre-commit-config.yaml"], cwd=ROOT, env=env, check=True
    )
    result = subprocess.run(
        [pre_commit, "run", "--all-files"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
