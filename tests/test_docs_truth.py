"""DEPLOYMENT.md and README.md speak only of what the combination has.

For every combination from copier.yml this reads the rendered runbook and
README and checks:

- TERMS: a database, service, CLI subcommand or variable named in the text
  exists with these answers (no "Redis" in a bot without Redis, no
  `migrate` without a database, no `<slug>-backup` service unless backups
  run inside Railway for PostgreSQL);
- paths: every workflow, script and other repository file the text names
  exists in the rendered tree;
- the shutdown bound the runbook promises is the one the code keeps, and it
  fits inside Railway's drainingSeconds.

Text added later is checked the same way; a failure names the file, the
line, the answer that makes it wrong and where to fix it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import matrix
from conftest import RenderedMatrix, combination_params

#: The pages every bot renders. docs/development.md and docs/template.md
#: differ most between the runtimes.
DOCS = ("DEPLOYMENT.md", "README.md", "docs/development.md", "docs/template.md")
Answers = dict[str, Any]


@dataclass(frozen=True)
class Term:
    """A word the docs may use only when ``holds(answers)``."""

    pattern: str
    holds: Callable[[Answers], bool]
    needs: str  # the answers that make it true, for the failure message


def _railway_backups(a: Answers) -> bool:
    return matrix.private_backups(a)


TERMS: tuple[Term, ...] = (
    Term(
        r"\bPostgreSQL\b|`Postgres`|\bPostgres\b",
        lambda a: a["database"] == "postgres",
        "database=postgres",
    ),
    Term(r"\bSQLite\b", lambda a: a["database"] == "sqlite", "database=sqlite"),
    Term(r"\bRedis\b", lambda a: bool(a["redis"]), "redis=true"),
    # The backup cron service exists only for PostgreSQL backed up inside Railway.
    Term(
        r"\b{slug}-backup\b",
        lambda a: a["database"] == "postgres" and _railway_backups(a),
        "database=postgres, backups=true, backup_path=railway",
    ),
    # The bot's own CLI: `python -m <package> COMMAND`.
    Term(
        r"python -m {package} migrate\b|`migrate`",
        lambda a: a["database"] != "none",
        "a database (database=postgres or sqlite)",
    ),
    # Without a database there is nothing to migrate, nor to warn users of.
    Term(r"\b[Mm]igrations?\b", lambda a: a["database"] != "none", "a database"),
    Term(
        r"python -m {package} (?:backup|backup-list|backup-check|backup-keygen|restore)\b",
        _railway_backups,
        "backups=true, backup_path=railway",
    ),
    Term(
        r"\bBACKUP_(?:S3_\w+|AGE_IDENTITY|RETENTION_DAYS|KEEP_MIN)\b",
        _railway_backups,
        "backups=true, backup_path=railway",
    ),
    # Both PostgreSQL paths back up as the read-only role and encrypt to age
    # recipients (backup.yml: a secret and a variable of the same names).
    Term(
        r"\bBACKUP_(?:AGE_RECIPIENTS|DATABASE_URL)\b",
        lambda a: _railway_backups(a) or (bool(a.get("backups")) and a["database"] == "postgres"),
        "backups=true with backup_path=railway, or database=postgres",
    ),
    # Both backup paths ping a dead-man's switch after each success.
    Term(r"\bBACKUP_HEARTBEAT_URL\b", lambda a: bool(a.get("backups")), "backups=true"),
    Term(
        r"\bTEMPLATE_UPDATE_TOKEN\b", lambda a: bool(a["template_updates"]), "template_updates=true"
    ),
    # Each runtime's toolchain; uv itself runs Copier for both, so only its
    # project commands count.
    Term(
        r"\buv (?:run|sync|lock|add)\b|\bpytest\b|\bpyproject\.toml\b|\buv\.lock\b|\bmypy\b|"
        r"\bruff\b|\bdiscord\.py\b|\bcogs?\b|\bpython -m\b|`[\w./-]+\.py`",
        lambda a: a["runtime"] == "python",
        "runtime=python",
    ),
    Term(
        r"\bnpm\b|\bnode dist/|\bdiscord\.js\b|\bpackage(?:-lock)?\.json\b|`[\w./-]+\.ts`",
        lambda a: a["runtime"] == "node",
        "runtime=node",
    ),
)

#: Paths named in prose anywhere, backticked or not.
PATH_IN_PROSE = re.compile(r"\.github/workflows/[\w.-]+\.ya?ml|\bscripts/[\w.-]+\.sh\b")
#: Backticked words that look like a file of the repository.
PATH_IN_CODE = re.compile(
    r"`(\.?[\w-]+(?:/[\w.{}-]+)*\.(?:ya?ml|sh|py|ts|json|toml|md|lock)|Dockerfile|docker/Dockerfile)`"
)
#: Files the docs name on purpose although the repository lacks them: Railway's
#: retired config files, objects in the backup bucket, and the example names
#: of a bot's next migration.
NOT_IN_REPOSITORY = {
    "railway.json",
    "railway.toml",
    "latest.json",
    "0002_add_streaks.ts",
    "m0002_what_changed.py",
}


def _blocks(text: str) -> list[tuple[int, str]]:
    """Paragraphs and table rows with the line each starts on."""
    blocks: list[tuple[int, str]] = []
    start, lines = 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("|"):
            if lines:
                blocks.append((start, " ".join(lines)))
            lines = []
            if line.strip():
                blocks.append((number, line))
            continue
        if not lines:
            start = number
        lines.append(line.strip())
    if lines:
        blocks.append((start, " ".join(lines)))
    return blocks


def term_problems(doc: str, text: str, answers: Answers, slug: str, package: str) -> list[str]:
    problems = []
    for term in TERMS:
        if term.holds(answers):
            continue
        pattern = re.compile(term.pattern.format(slug=re.escape(slug), package=package))
        for number, block in _blocks(text):
            if m := pattern.search(block):
                problems.append(
                    f"{doc}:{number} names {m[0]!r}, which exists only with {term.needs}: "
                    f"guard that text with the same condition in template/{doc}.jinja or the "
                    f"include it comes from (includes/deployment/). Context: {block[:160]!r}"
                )
                break
    return problems


def path_problems(doc: str, text: str, tree: Path) -> list[str]:
    problems = []
    names = {p.name for p in tree.rglob("*")}
    for number, block in _blocks(text):
        found = set(PATH_IN_PROSE.findall(block)) | set(PATH_IN_CODE.findall(block))
        for path in sorted(found):
            if path in NOT_IN_REPOSITORY or "{" in path or path.startswith(("http", "~")):
                continue
            if path == "Dockerfile" and "root" in block:
                continue  # "a root Dockerfile" is named as something to avoid
            exists = (tree / path.rstrip("/")).exists() if "/" in path else path in names
            if not exists:
                problems.append(
                    f"{doc}:{number} names `{path}`, which this combination does not render: "
                    f"guard the text with the condition of that file's name in template/, or fix "
                    f"the path. Context: {block[:160]!r}"
                )
    return problems


def _constants(source: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, int | float)
        ):
            values[node.targets[0].id] = float(node.value.value)
    return values


def _shutdown_bounds(tree: Path, package: str) -> tuple[str, float, float, int]:
    """(file, budget s, step timeout s, cleanup steps) as the bot's lifecycle module keeps them."""
    python = tree / "src" / package / "lifecycle.py"
    if python.is_file():
        source = python.read_text(encoding="utf-8")
        const = _constants(source)
        steps = len(re.findall(r"push_async_callback\(_bounded,", source))
        return python.name, const["SHUTDOWN_BUDGET_SECONDS"], const["STEP_TIMEOUT_SECONDS"], steps
    node = tree / "src" / "lifecycle.ts"
    source = node.read_text(encoding="utf-8")
    ms = {
        name: float(value.replace("_", "")) / 1000
        for name, value in re.findall(r"^export const (\w+)_MS = ([\d_]+);$", source, re.M)
    }
    steps = len(re.findall(r"\bcleanup\.(?:push|splice)\(", source))
    return node.name, ms["SHUTDOWN_BUDGET"], ms["STEP_TIMEOUT"], steps


def shutdown_problems(tree: Path, deployment: str, package: str) -> list[str]:
    module, budget, step, steps = _shutdown_bounds(tree, package)
    problems = []
    # One second stays for cancelling the client and the process's exit.
    if steps * step > budget - 1:
        problems.append(
            f"{module}: {steps} shutdown steps of {step:g} s each can take {steps * step:g} s, "
            f"past its shutdown budget of {budget:g} s less 1 s: lower the step timeout"
        )
    m = re.search(r"has\s+(\d+) s before SIGKILL", deployment)
    if not m:
        problems.append("DEPLOYMENT.md no longer says how long Railway waits before SIGKILL")
    elif budget >= int(m[1]):
        problems.append(f"the shutdown budget {budget:g} s is not inside drainingSeconds {m[1]} s")
    if f"within {budget:g} s" not in deployment:
        problems.append(
            f"DEPLOYMENT.md does not promise the code's bound: say 'within {budget:g} s' "
            f"(the shutdown budget in {module})"
        )
    return problems


def _answers(tree: Path, combo: matrix.Combination) -> tuple[Answers, str, str]:
    text = (tree / ".copier-answers.yml").read_text(encoding="utf-8")
    slug = re.search(r"^project_slug: (\S+)$", text, re.M)
    assert slug, "no project_slug in the answers file"
    package = slug[1].replace("-", "_")
    return dict(combo.answers), slug[1], package


@pytest.mark.parametrize("combo", combination_params())
def test_docs_name_only_what_the_combination_has(
    rendered_matrix: RenderedMatrix, combo: matrix.Combination
) -> None:
    tree = rendered_matrix.tree(combo)
    answers, slug, package = _answers(tree, combo)
    problems: list[str] = []
    for doc in DOCS:
        text = (tree / doc).read_text(encoding="utf-8")
        problems += term_problems(doc, text, answers, slug, package)
        problems += path_problems(doc, text, tree)
    deployment = (tree / "DEPLOYMENT.md").read_text("utf-8")
    problems += shutdown_problems(tree, deployment, package)
    problems += protection_problems(
        deployment, matrix.complete({**matrix.REQUIRED_ANSWERS, **answers})
    )
    assert not problems, "\n".join(problems)


def protection_problems(deployment: str, answers: Answers) -> list[str]:
    """The runbook has the owner protect every branch that deploys before the first deploy."""
    match = re.search(r"^### Protect the branches that deploy\n(.*?)^### ", deployment, re.M | re.S)
    if not match:
        return ["DEPLOYMENT.md does not say how to protect the branches that deploy"]
    section, problems = match[1], []
    branches = ["main", "develop"] if answers["staging"] else ["main"]
    target = " and ".join(f"`{b}`" for b in branches)
    if f"target branches {target}" not in " ".join(section.split()):
        problems.append(f"the ruleset does not target {target}")
    for rule in (
        "Block force pushes",
        "Require a pull request",
        "Require status checks",
        "bypass list",
        "never GitHub Actions",
    ):
        if rule not in section:
            problems.append(f"the ruleset lacks '{rule}'")
    if answers["deploy_mode"] == "actions" and "**Required reviewers**" not in section:
        problems.append("production's environment has no required reviewers")
    if answers["template_updates"] and "`template-update`" not in section:
        problems.append("the template-update environment is not limited to its branch")
    before = deployment.split("## First deploy", 1)[0]
    if "Protect the branches" not in " ".join(before.split()):
        problems.append("the first-deploy checklist does not point to the branch protection")
    return problems


# ------------------------------------------------------ the checks themselves --
def test_a_term_outside_its_combination_is_caught() -> None:
    answers = {
        "runtime": "python",
        "database": "none",
        "redis": False,
        "deploy_mode": "actions",
        "template_updates": True,
        "backups": False,
    }
    text = "Intro.\n\nThe lock lives in Redis.\n"
    [problem] = term_problems("README.md", text, answers, "pingu", "pingu")
    assert "README.md:3" in problem and "redis=true" in problem
    assert term_problems("README.md", "The lock lives nowhere.\n", answers, "p", "p") == []
    # Each runtime's toolchain stays out of the other's pages.
    [problem] = term_problems("README.md", "Run `npm test`.\n", answers, "p", "p")
    assert "runtime=node" in problem
    node = {**answers, "runtime": "node"}
    [problem] = term_problems("README.md", "Run `uv run pytest`.\n", node, "p", "p")
    assert "runtime=python" in problem
    assert term_problems("README.md", "Copier runs through `uvx`.\n", node, "p", "p") == []
    # A database=none runbook warning of a long migration (its deploy checklist once did).
    [problem] = term_problems("DEPLOYMENT.md", "Or a migration that takes long.\n", node, "p", "p")
    assert "'migration'" in problem and "a database" in problem


def test_a_missing_path_is_caught(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "backup.sh").write_text("")
    ok = "Run `scripts/backup.sh`; Railway no longer reads `railway.json`.\n"
    assert path_problems("DEPLOYMENT.md", ok, tmp_path) == []
    bad = "See .github/workflows/backup.yml and `scripts/restore.sh`.\n"
    problems = path_problems("DEPLOYMENT.md", bad, tmp_path)
    assert len(problems) == 2, problems


def test_a_shutdown_longer_than_promised_is_caught(tmp_path: Path) -> None:
    (tmp_path / "src" / "p").mkdir(parents=True)
    steps = "".join(f"cleanup.push_async_callback(_bounded, 'step {i}', f)\n" for i in range(5))
    runbook = "has 20 s before SIGKILL; it exits within 10 s."
    for step, expect_problem in ((3.0, True), (1.8, False)):
        (tmp_path / "src" / "p" / "lifecycle.py").write_text(
            f"SHUTDOWN_BUDGET_SECONDS = 10.0\nSTEP_TIMEOUT_SECONDS = {step}\n{steps}"
        )
        assert bool(shutdown_problems(tmp_path, runbook, "p")) is expect_problem
