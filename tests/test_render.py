"""Every valid combination renders, cleanly, with the files its answers promise."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

import matrix
from conftest import RenderedMatrix, combination_params
from linters import SafeLoader

Answers = dict[str, Any]

# Jinja syntax left in a rendered file. GitHub expressions (${{ }}) and
# Railway reference variables (${{Postgres.DATABASE_URL}}) are legitimate.
LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|\{#|%\}|#\}")


@dataclass(frozen=True)
class Rule:
    """A file that exists exactly when ``when(answers)`` holds."""

    option: str
    path: str
    when: Callable[[Answers], bool]
    # Optional: a pattern that must be in the file exactly when ``contains_when`` holds.
    pattern: str | None = None
    contains_when: Callable[[Answers], bool] | None = None


# A requirement inside pyproject's [project] dependencies list (not a dev group).
RUNTIME_DEPENDENCY = r'(?ms)^dependencies = \[(?:(?!^\]).)*^  "{name}'


def node_dependency(name: str) -> str:
    """A package in package.json's "dependencies" object (not devDependencies).

    Braces doubled: a rule's pattern is formatted with the answers.
    """
    return r'(?ms)^  "dependencies": \{{(?:(?!^  \}}).)*^    "' + name + '": '


def python(a: Answers) -> bool:
    return a["runtime"] == "python"


def node(a: Answers) -> bool:
    return a["runtime"] == "node"


def has_db(a: Answers) -> bool:
    return a["database"] != "none"


def _iac(a: Answers) -> bool:
    return a["railway_config"] == "iac"


def _actions_backups(a: Answers) -> bool:
    return bool(a["backups"]) and a["backup_path"] == "actions"


def private_backups(a: Answers) -> bool:
    """The bot backs itself up to a bucket (backup_path=railway)."""
    return matrix.private_backups(a)


def python_backups(a: Answers) -> bool:
    return python(a) and private_backups(a)


def node_backups(a: Answers) -> bool:
    return node(a) and private_backups(a)


#: The rule for each option: which files it adds or removes, and the content
#: it must change. docs/options.md says the same in prose.
RULES: tuple[Rule, ...] = (
    # runtime
    Rule("runtime", "pyproject.toml", python),
    Rule("runtime", "uv.lock", python),
    Rule("runtime", ".python-version", python),
    Rule("runtime", "src/{package_name}/__init__.py", python),
    Rule("runtime", "src/{package_name}/config.py", python),
    Rule("runtime", "tests/conftest.py", python),
    Rule("runtime", "package.json", node),
    Rule("runtime", "package-lock.json", node),
    Rule("runtime", ".nvmrc", node),
    Rule("runtime", "tsconfig.json", node),
    Rule("runtime", "eslint.config.js", node),
    Rule("runtime", "src/config.ts", node),
    Rule("runtime", "src/main.ts", node),
    Rule("runtime", "tests/fakeDiscord.ts", node),
    # python_version (not structural; every combination uses the default)
    Rule(
        "python_version",
        ".python-version",
        python,
        pattern=r"^{python_version}\n",
        contains_when=python,
    ),
    # database
    Rule("database", "src/{package_name}/database.py", lambda a: python(a) and has_db(a)),
    Rule("database", "src/{package_name}/migrations/env.py", lambda a: python(a) and has_db(a)),
    Rule("database", "src/{package_name}/tables/__init__.py", lambda a: python(a) and has_db(a)),
    Rule("database", "src/database.ts", lambda a: node(a) and has_db(a)),
    Rule("database", "src/migrations/0001_initial.ts", lambda a: node(a) and has_db(a)),
    # The SQLite image's ENTRYPOINT: a root start hands the volume over, then drops to its user.
    Rule("database", "scripts/drop-privileges.sh", lambda a: a["database"] == "sqlite"),
    Rule(
        "database",
        "{dockerfile}",
        lambda a: True,
        pattern=r'(?m)^ENTRYPOINT \["/usr/local/bin/drop-privileges"\]$',
        contains_when=lambda a: a["database"] == "sqlite",
    ),
    Rule(
        "database",
        ".env.example",
        lambda a: True,
        pattern=r"(?m)^#? ?DATABASE_URL=",
        contains_when=has_db,
    ),
    Rule(
        "database",
        "compose.yaml",
        lambda a: True,
        pattern=r"(?m)^  postgres:",
        contains_when=lambda a: a["database"] == "postgres",
    ),
    Rule(
        "database",
        "pyproject.toml",
        python,
        pattern=RUNTIME_DEPENDENCY.format(name="aiosqlite"),
        contains_when=lambda a: a["database"] == "sqlite",
    ),
    Rule(
        "database",
        "pyproject.toml",
        python,
        pattern=RUNTIME_DEPENDENCY.format(name="asyncpg"),
        contains_when=lambda a: a["database"] == "postgres",
    ),
    Rule(
        "database",
        "package.json",
        node,
        pattern=node_dependency("pg"),
        contains_when=lambda a: a["database"] == "postgres",
    ),
    Rule(
        "database",
        "src/migrations/0001_initial.ts",
        lambda a: node(a) and has_db(a),
        pattern=r'import type pg from "pg"',
        contains_when=lambda a: a["database"] == "postgres",
    ),
    # redis
    Rule(
        "redis",
        ".env.example",
        lambda a: True,
        pattern=r"(?m)^#? ?REDIS_URL=",
        contains_when=lambda a: a["redis"],
    ),
    Rule(
        "redis",
        "compose.yaml",
        lambda a: True,
        pattern=r"(?m)^  redis:",
        contains_when=lambda a: a["redis"],
    ),
    Rule(
        "redis",
        "pyproject.toml",
        python,
        pattern=RUNTIME_DEPENDENCY.format(name="redis[>=<~]"),
        contains_when=lambda a: a["redis"],
    ),
    Rule(
        "redis",
        "package.json",
        node,
        pattern=node_dependency("ioredis"),
        contains_when=lambda a: a["redis"],
    ),
    Rule("redis", "src/redis.ts", lambda a: node(a) and a["redis"]),
    # builder: Railway prefers a root Dockerfile whenever it finds one.
    Rule("builder", "Dockerfile", lambda a: a["builder"] == "dockerfile"),
    Rule("builder", "railpack.json", lambda a: a["builder"] == "railpack"),
    Rule("builder", "nixpacks.toml", lambda a: a["builder"] == "nixpacks"),
    Rule("builder", "compose.yaml", lambda a: True),
    Rule("builder", ".dockerignore", lambda a: True),
    # railway_config
    Rule("railway_config", ".railway/railway.py", lambda a: python(a) and _iac(a)),
    Rule("railway_config", ".railway/railway.ts", lambda a: node(a) and _iac(a)),
    # The npm SDK that .railway/railway.ts imports, a dev dependency only with it.
    Rule(
        "railway_config",
        "package.json",
        node,
        pattern=r'(?m)^    "railway": ',
        contains_when=lambda a: a["railway_config"] == "iac",
    ),
    # Config as Code is retired: json and toml are refused on copy, never rendered.
    Rule("railway_config", "railway.json", lambda a: False),
    Rule("railway_config", "railway.toml", lambda a: False),
    Rule(
        "railway_config",
        "DEPLOYMENT.md",
        lambda a: True,
        pattern=r"### A service that used railway\.json or railway\.toml",
        contains_when=lambda a: a["railway_config"] == "iac",
    ),
    # deploy_mode
    Rule("deploy_mode", ".github/workflows/deploy.yml", lambda a: a["deploy_mode"] == "actions"),
    Rule("deploy_mode", ".github/workflows/ci.yml", lambda a: True),
    Rule(
        "deploy_mode",
        "DEPLOYMENT.md",
        lambda a: True,
        pattern=r"Wait for CI",
        contains_when=lambda a: a["deploy_mode"] == "autodeploy",
    ),
    # staging
    Rule(
        "staging",
        ".github/workflows/ci.yml",
        lambda a: True,
        pattern=r"\bdevelop\b",
        contains_when=lambda a: a["staging"],
    ),
    Rule(
        "staging",
        "DEPLOYMENT.md",
        lambda a: True,
        pattern=r"(?m)^\| Environments \|.*`staging`",
        contains_when=lambda a: a["staging"],
    ),
    # template_updates
    Rule(
        "template_updates",
        ".github/workflows/template-update.yml",
        lambda a: a["template_updates"],
    ),
    Rule(
        "template_updates",
        "docs/template.md",
        lambda a: True,
        pattern=r"## Updates as pull requests",
        contains_when=lambda a: a["template_updates"],
    ),
    # backups, and where they run (backup_path): the workflow and scripts
    # only from GitHub Actions; a cron service and pg_dump 18 in the image
    # for PostgreSQL inside the project.
    Rule("backups", ".github/workflows/backup.yml", lambda a: _actions_backups(a)),
    Rule("backups", "scripts/backup.sh", lambda a: _actions_backups(a)),
    Rule("backups", "scripts/restore.sh", lambda a: _actions_backups(a)),
    Rule(
        "backup_path",
        "DEPLOYMENT.md",
        lambda a: True,
        pattern=r"### Offsite backups: the variables",
        contains_when=lambda a: private_backups(a),
    ),
    Rule(
        "backup_path",
        "DEPLOYMENT.md",
        lambda a: True,
        pattern=r"`{project_slug}-backup`",
        contains_when=lambda a: private_backups(a) and a["database"] == "postgres",
    ),
    Rule(
        "backup_path",
        ".railway/railway.py",
        lambda a: python(a) and a["railway_config"] == "iac",
        pattern=r'(?m)^BACKUP_SERVICE = "{project_slug}-backup"$',
        contains_when=lambda a: private_backups(a) and a["database"] == "postgres",
    ),
    Rule(
        "backup_path",
        ".railway/railway.ts",
        lambda a: node(a) and a["railway_config"] == "iac",
        pattern=r'(?m)^const BACKUP_SERVICE = "{project_slug}-backup";$',
        contains_when=lambda a: private_backups(a) and a["database"] == "postgres",
    ),
    Rule(
        "backup_path",
        "{dockerfile}",
        lambda a: True,
        pattern=r"apt-get install -y --no-install-recommends postgresql-client-18",
        contains_when=lambda a: private_backups(a) and a["database"] == "postgres",
    ),
    # backup_path: railway puts the backups in the bot itself.
    Rule("backup_path", "src/{package_name}/backup.py", python_backups),
    Rule("backup_path", "src/{package_name}/backup_storage.py", python_backups),
    Rule("backup_path", "src/{package_name}/backup_crypto.py", python_backups),
    Rule("backup_path", "tests/test_backup.py", python_backups),
    Rule("backup_path", "tests/test_backup_storage.py", python_backups),
    Rule("backup_path", "tests/s3_fixtures.py", python_backups),
    Rule(
        "backup_path",
        "pyproject.toml",
        python,
        pattern=RUNTIME_DEPENDENCY.format(name="pyrage"),
        contains_when=private_backups,
    ),
    Rule("backup_path", "src/backup.ts", node_backups),
    Rule("backup_path", "src/backupStorage.ts", node_backups),
    Rule("backup_path", "src/backupCrypto.ts", node_backups),
    Rule("backup_path", "tests/backup.test.ts", node_backups),
    Rule("backup_path", "tests/fakeS3.ts", node_backups),
    Rule(
        "backup_path",
        "package.json",
        node,
        pattern=node_dependency("age-encryption"),
        contains_when=private_backups,
    ),
    Rule(
        "backup_path",
        ".env.example",
        lambda a: True,
        pattern=r"(?m)^# BACKUP_AGE_RECIPIENTS=",
        contains_when=private_backups,
    ),
    # always
    Rule("project", "README.md", lambda a: True),
    Rule("project", "docs/development.md", lambda a: True),
    Rule("project", "scripts/template-update.sh", lambda a: True),
    Rule("project", "CHANGELOG.md", lambda a: True),
    Rule("project", "DEPLOYMENT.md", lambda a: True),
    Rule("project", ".env.example", lambda a: True),
    Rule("project", ".gitignore", lambda a: True),
    Rule("project", ".github/dependabot.yml", lambda a: True),
)


def _full_answers(combo: matrix.Combination) -> Answers:
    answers = matrix.complete({**matrix.REQUIRED_ANSWERS, **combo.answers})
    dockerfile = "Dockerfile" if answers["builder"] == "dockerfile" else "docker/Dockerfile"
    return {**answers, "dockerfile": dockerfile}


def test_every_structural_question_has_a_manifest_rule() -> None:
    """A new option must say which files it changes before it can ship."""
    covered = {rule.option for rule in RULES}
    assert set(matrix.STRUCTURAL) <= covered, set(matrix.STRUCTURAL) - covered


def test_matrix_is_the_full_product() -> None:
    """The matrix is the product of every structural choice, less what copier.yml refuses."""
    product = 1
    for name in matrix.STRUCTURAL:
        product *= len(matrix.choices(name))
    combos = matrix.combinations()
    assert len({c.id for c in combos}) == len(combos), "a combination is rendered twice"
    # backups is not asked without a database: those combinations collapse.
    assert len(combos) + len(matrix.rejected_combinations()) < product
    asked = {name for combo in combos for name, _ in combo.data}
    assert asked == set(matrix.STRUCTURAL)
    for name in matrix.STRUCTURAL:
        seen = {dict(c.data).get(name) for c in combos} - {None}
        offered = set(matrix.choices(name)) - set(matrix.disabled_choices(name))
        assert seen == offered, f"{name}: {seen}"
    # A disabled choice is refused, with its reason, in one combination each.
    refused = {(n, a[n]) for a, _ in matrix.rejected_combinations() for n in a}
    for name in matrix.STRUCTURAL:
        for value in matrix.disabled_choices(name):
            assert (name, value) in refused, (name, value)


def test_every_combination_rendered(rendered_matrix: RenderedMatrix) -> None:
    assert not rendered_matrix.errors, "\n".join(
        f"{k}: {v}" for k, v in sorted(rendered_matrix.errors.items())
    )
    assert len(rendered_matrix.trees) == len(matrix.combinations())


@pytest.mark.parametrize("combo", combination_params())
def test_combination(combo: matrix.Combination, rendered_matrix: RenderedMatrix) -> None:
    tree = rendered_matrix.tree(combo)
    answers = _full_answers(combo)
    problems: list[str] = []

    files = [p for p in tree.rglob("*") if p.is_file()]
    templated = matrix.rendered_templates(combo.answers)
    for path in files:
        rel = path.relative_to(tree).as_posix()
        if rel.endswith(".jinja") or "{{" in rel or "{%" in rel:
            problems.append(f"{rel}: template file name left in the output")
        if path.stat().st_size == 0 and path.name != "py.typed":
            problems.append(f"{rel}: empty file")
        text = path.read_text(encoding="utf-8")
        if rel in templated and (match := LEFTOVER.search(text)):
            line = text.count("\n", 0, match.start()) + 1
            problems.append(f"{rel}:{line}: Jinja syntax left in the output: {match.group()}")
    for directory in (p for p in tree.rglob("*") if p.is_dir()):
        if not any(directory.iterdir()):
            problems.append(f"{directory.relative_to(tree)}: empty directory")

    answers_file = (tree / ".copier-answers.yml").read_text(encoding="utf-8")
    recorded = yaml.load(answers_file, Loader=SafeLoader)
    for name, value in combo.answers.items():
        if recorded.get(name) != value:
            problems.append(
                f".copier-answers.yml: {name}={recorded.get(name)!r}, expected {value!r}"
            )

    for rule in RULES:
        rel = rule.path.format(**answers)
        exists = (tree / rel).is_file()
        if exists != rule.when(answers):
            state = "present" if exists else "missing"
            problems.append(f"[{rule.option}] {rel} is {state}")
        if exists and rule.pattern and rule.contains_when:
            text = (tree / rel).read_text(encoding="utf-8")
            found = re.search(rule.pattern.format(**answers), text) is not None
            if found != rule.contains_when(answers):
                verb = "contains" if found else "lacks"
                problems.append(f"[{rule.option}] {rel} {verb} {rule.pattern!r}")

    assert not problems, "\n".join(problems)
