"""Bad answers are refused with a message that names the fix; hostile ones render safely."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml

import linters
import matrix

# (answers, a fragment the error message must contain)
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"project_name": ""}, "project_name is empty"),
    ({"project_name": "   "}, "project_name is empty"),
    ({"project_name": "x" * 101}, "keep it to 100 or fewer"),
    ({"project_name": "Pingu\nBot"}, "project_name must fit on one line"),
    ({"project_name": "펭구 봇"}, "set project_slug"),
    ({"project_slug": "Pingu"}, 'project_slug "Pingu" is not valid'),
    ({"project_slug": "1bot"}, "start with a letter"),
    ({"project_slug": "pingu_bot"}, "lowercase letters, digits and single hyphens"),
    ({"project_slug": "pingu--bot"}, "single hyphens"),
    ({"project_slug": "pingu-"}, "end with a letter or digit"),
    ({"project_slug": "a" * 33}, "use at most 32"),
    ({"project_slug": "discord"}, 'shadows the module "discord"'),
    ({"project_slug": "test"}, 'shadows the module "test"'),
    ({"project_slug": "postgres"}, "collides with the Railway database service"),
    ({"description": ""}, "description is empty"),
    ({"description": "one\ntwo"}, "description must fit on one line"),
    ({"description": "d" * 201}, "keep it to 200 or fewer"),
    ({"author_name": " "}, "author_name is empty"),
    ({"author_email": "nope"}, "is not an email address"),
    ({"author_email": "pingu@localhost"}, "is not an email address"),
    ({"author_email": "pin gu@example.com"}, "is not an email address"),
    ({"github_repository": ""}, "github_repository is required"),
    ({"github_repository": "pingu-bot"}, 'exactly one "/"'),
    ({"github_repository": "octocat/pingu/bot"}, 'exactly one "/"'),
    ({"github_repository": "-octocat/pingu-bot"}, "is not a GitHub user or organisation name"),
    ({"github_repository": "o" * 40 + "/pingu-bot"}, "at most 39 characters"),
    ({"github_repository": "octocat/pingu bot"}, "is not a GitHub repository name"),
    ({"github_repository": "octocat/pingu-bot.git"}, 'without a ".git" suffix'),
    ({"runtime": "rust"}, "Invalid choice for 'runtime'"),
    ({"python_version": "3.11"}, "Invalid choice for 'python_version'"),
    ({"database": "mysql"}, "Invalid choice for 'database'"),
    ({"builder": "buildpacks"}, "Invalid choice for 'builder'"),
    ({"railway_config": "yaml"}, "Invalid choice for 'railway_config'"),
    ({"deploy_mode": "manual"}, "Invalid choice for 'deploy_mode'"),
    ({"builder": "nixpacks", "railway_config": "none"}, "railway_config=iac, or builder=railpack"),
    # Config as Code: kept as choices only so that copy explains the refusal
    # and update replaces a stored json/toml answer (see test_update.py).
    ({"railway_config": "json"}, "stopped reading railway.json (Config as Code) on 2026-12-01"),
    ({"railway_config": "toml"}, "stopped reading railway.toml (Config as Code) on 2026-12-01"),
    ({"railway_config": "json"}, "Choose railway_config=iac (.railway/railway.py, the same"),
    ({"database": "none", "backups": True}, "backups=true needs a database"),
]


def _copy(answers: dict[str, Any], dst: Path) -> None:
    copier.run_copy(
        str(matrix.template_copy()),
        str(dst),
        data={**matrix.REQUIRED_ANSWERS, **answers},
        defaults=True,
        quiet=True,
        unsafe=False,
    )


def _assert_nothing_written(dst: Path) -> None:
    assert not dst.exists() or not any(dst.iterdir()), sorted(p.name for p in dst.iterdir())


def test_the_table_is_big_enough() -> None:
    assert len(INVALID) >= 25


@pytest.mark.parametrize(
    ("answers", "message"),
    INVALID,
    ids=[f"{i:02d}-{'-'.join(a)}" for i, (a, _) in enumerate(INVALID)],
)
def test_invalid_answer_is_rejected(answers: dict[str, Any], message: str, tmp_path: Path) -> None:
    dst = tmp_path / "bot"
    with pytest.raises(ValueError, match=None) as error:
        _copy(answers, dst)
    assert message in str(error.value)
    _assert_nothing_written(dst)


@pytest.mark.parametrize(
    ("answers", "messages"),
    [
        pytest.param(a, m, id="-".join(map(str, a.values())))
        for a, m in matrix.rejected_combinations()
    ],
)
def test_rejected_combination_is_rejected_by_copier(
    answers: dict[str, Any], messages: tuple[str, ...], tmp_path: Path
) -> None:
    """Every combination the matrix skips is one Copier itself refuses, with that message."""
    dst = tmp_path / "bot"
    with pytest.raises(ValueError) as error:
        _copy(answers, dst)
    assert messages[0] in str(error.value)
    _assert_nothing_written(dst)


def test_cli_shows_the_message_and_fails(tmp_path: Path) -> None:
    """What a user sees: a non-zero exit, the fix in the output, no files."""
    dst = tmp_path / "bot"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "copier"),
            "copy",
            "--defaults",
            "--data",
            "github_repository=octocat/pingu-bot",
            "--data",
            "builder=nixpacks",
            "--data",
            "railway_config=none",
            str(matrix.template_copy()),
            str(dst),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert "choose railway_config=iac, or builder=railpack" in proc.stderr
    _assert_nothing_written(dst)


# Valid answers that break naive templates: quotes of every kind, shell and
# Jinja syntax, YAML/TOML/Markdown metacharacters, non-ASCII and maximum lengths.
HOSTILE: dict[str, dict[str, Any]] = {
    "quotes-and-shell": {
        "project_name": 'Pingu "the" Bot\'s $(rm -rf /) `id` {{ 7*7 }} {% if %}',
        "project_slug": "pingu-bot",
        "description": (
            "Says \"hi\" & 'bye'; $HOME ${PATH} \\n \\ <b>bold</b> # not a comment: {{ x }}"
        ),
        "author_name": 'O\'Brien "Ops" & Co. \\ $(whoami)',
        "author_email": "o.brien+ops@example.co.uk",
    },
    "non-ascii": {
        "project_name": "펭구 봇",
        "project_slug": "pengu-bot",
        "description": "펭구를 위한 봇 — «guillemets», emoji 🐧, ümlaut",
        "author_name": "Zoë Ørsted 김",
    },
    "markup-and-max-length": {
        "project_name": (
            "# Not a heading *bold* _x_ [link](y) | pipe - key: value &anchor !tag @at " * 2
        )[:100],
        "project_slug": "a" + "-b" * 15 + "c",
        "description": ("\"\"\" triple ''' quotes ] [ } { % : " * 10)[:200],
        "author_name": "- leading dash: and colon",
    },
}

HOSTILE_STRUCTURE = [
    {},
    {
        "database": "sqlite",
        "redis": True,
        "builder": "railpack",
        "railway_config": "none",
        "deploy_mode": "autodeploy",
        "staging": False,
    },
    {"database": "none", "builder": "nixpacks", "railway_config": "iac"},
    # A Node bot: its name and description go into package.json, project.ts
    # and railway.ts, each with its own quoting.
    {"runtime": "node", "database": "postgres", "redis": True},
    {"runtime": "node", "database": "sqlite", "builder": "railpack", "railway_config": "none"},
]


@pytest.fixture(scope="module")
def hostile_trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    jobs = {
        f"{name}-{i}": {**answers, **structure}
        for name, answers in HOSTILE.items()
        for i, structure in enumerate(HOSTILE_STRUCTURE)
    }
    results = matrix.render_all(jobs, tmp_path_factory.mktemp("hostile"))
    errors = {k: v for k, v in results.items() if isinstance(v, str)}
    assert not errors, errors
    return {k: v for k, v in results.items() if isinstance(v, Path)}


def test_hostile_answers_are_recorded_verbatim(hostile_trees: dict[str, Path]) -> None:
    for name, tree in hostile_trees.items():
        recorded = yaml.safe_load((tree / ".copier-answers.yml").read_text(encoding="utf-8"))
        for key, value in HOSTILE[name.rsplit("-", 1)[0]].items():
            assert recorded[key] == value, (name, key)


def test_hostile_answers_are_not_evaluated(hostile_trees: dict[str, Path]) -> None:
    """Answers are data: their Jinja and shell syntax reach files as text, never run."""
    tree = hostile_trees["quotes-and-shell-0"]
    readme = (tree / "README.md").read_text(encoding="utf-8")
    assert "{{ 7*7 }}" in readme or "{{ 7\\*7 }}" in readme
    assert "49" not in readme


@pytest.mark.parametrize("name", [linter.name for linter in linters.LINTERS])
def test_hostile_answers_lint_clean(name: str, hostile_trees: dict[str, Path]) -> None:
    files = linters.distinct_files(hostile_trees)
    linter = next(linter for linter in linters.LINTERS if linter.name == name)
    selected = linters.files_for(linter, files)
    if not selected:
        pytest.skip(f"no {name} files in the hostile renders")
    findings = linter.run([f.path for f in selected])
    assert not findings, "\n\n".join(findings)
