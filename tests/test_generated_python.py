"""Generated Python projects pass their own toolchain, from their first commit.

For each Python combination of the tiers' covering array
(matrix.tier_combinations("python"): every pair of runtime, database, redis,
backups and backup_path values, and every database with and without private
backups) this renders a project and runs what its developers and CI run:
``uv sync --locked`` (the kept lock must install without resolving), ``ruff
check``, ``ruff format --check``, ``mypy`` and ``pytest`` against the real PostgreSQL and Redis of
this machine, with ``REQUIRE_SERVICES=1`` so a missing service fails instead
of skipping. A second group proves that each kept lock under locks/ installs
with ``uv sync --locked`` in the project that includes it.

The combinations come from copier.yml (through tests/matrix.py), the lock sets
from hooks/refresh_locks.py, which groups the same combinations by the
dependencies they render. Both groups are marked slow: run them with
``pytest -m slow`` (the uv cache is shared, so only the first run downloads).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hooks"))

import refresh_locks

import matrix
from conftest import TEST_DATABASE_URL, TEST_REDIS_URL, exclusive, run_tool, tier_params

#: Variables of this run that would change what the generated project runs.
_NOT_INHERITED = frozenset(
    {"PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT", "UV_NO_SYNC", "UV_FROZEN", "UV_PYTHON"}
)
#: Any supported Python does to compare a lock with its pyproject.
LOCK_CHECK_PYTHON = refresh_locks.LOCK_PYTHON
#: Longest any one tool may run before the test gives up on it.
TOOL_TIMEOUT = 900


def _lock_sets() -> list[Any]:
    return [
        pytest.param(answers, id=key) for key, answers in refresh_locks.dependency_sets().items()
    ]


def _render(answers: dict[str, Any], dst: Path) -> tuple[Path, dict[str, Any]]:
    structural = {
        k: v
        for k, v in answers.items()
        if k in matrix.STRUCTURAL or k in {"python_version", "project_slug"}
    }
    matrix.render(structural, dst)
    return dst, matrix.complete({**matrix.REQUIRED_ANSWERS, **structural})


def _environment(answers: dict[str, Any]) -> dict[str, str]:
    """The variables a developer of the generated project would have."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing of this test run (its venv, pytest options, xdist worker)
        # may leak into the generated project's tools; uv's cache and index
        # settings may, so CI can point them elsewhere.
        if not key.startswith(("VIRTUAL_ENV", "PYTEST_", "CRB_")) and key not in _NOT_INHERITED
    }
    env |= {
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": refresh_locks.interpreter(answers["python_version"]),
        "UV_NO_PROGRESS": "1",
        # Installed with bytecode compiled, as the Docker image does: otherwise
        # the first bots the project's tests start, several at once, compile
        # discord.py and SQLAlchemy from source and miss the drills' bounds.
        "UV_COMPILE_BYTECODE": "1",
        "REQUIRE_SERVICES": "1",
        "TEST_REDIS_URL": TEST_REDIS_URL,
    }
    if answers["database"] == "postgres":
        env["TEST_DATABASE_URL"] = TEST_DATABASE_URL
    # The backup tests decrypt with the reference age tool: required where it
    # is installed or where services are required (CI installs it).
    if shutil.which("age") or os.environ.get("REQUIRE_SERVICES") == "1":
        env["REQUIRE_AGE"] = "1"
    return env


def _run(command: list[str], project: Path, env: dict[str, str], *, timed: bool = False) -> str:
    return run_tool(command, project, env, timeout=TOOL_TIMEOUT, timed=timed)


@contextmanager
def shared_mypy_cache(cache: Path) -> Iterator[dict[str, str]]:
    """The variables that point mypy at the run's shared cache, for one run.

    The cache is one SQLite database that mypy writes without waiting for other
    writers, so two concurrent runs could fail on a locked database: they take
    turns instead (a warm run takes a second or two).
    """
    with exclusive(cache.with_name(f"{cache.name}.lock")):
        yield {"MYPY_CACHE_DIR": str(cache)}


@pytest.mark.slow
@pytest.mark.bot_suite
@pytest.mark.parametrize("wanted", tier_params("python"))
def test_generated_project_passes_its_own_toolchain(
    wanted: dict[str, Any], tmp_path: Path, mypy_cache: Path, bot_suite_lock: Path
) -> None:
    project, answers = _render(wanted, tmp_path / "project")
    env = _environment(answers)
    uv = refresh_locks.uv_binary()
    _run([uv, "sync", "--locked"], project, env)
    _run([uv, "run", "--locked", "ruff", "check", "."], project, env)
    _run([uv, "run", "--locked", "ruff", "format", "--check", "."], project, env)
    # The files and strictness come from the generated pyproject: src and tests.
    with shared_mypy_cache(mypy_cache) as mypy_env:
        _run([uv, "run", "--locked", "mypy"], project, env | mypy_env)
    # The redeploy drills run once per lock backend (matrix.runs_drills).
    only = [] if matrix.runs_drills(wanted) else ["-m", "not drill"]
    with exclusive(bot_suite_lock):
        pytest_ = [uv, "run", "--locked", "pytest", "-p", "no:cacheprovider", *only]
        _run(pytest_, project, env, timed=True)


@pytest.mark.slow
@pytest.mark.parametrize("answers", _lock_sets())
def test_each_kept_lock_installs_without_resolving(answers: dict[str, Any], tmp_path: Path) -> None:
    project, completed = _render(answers, tmp_path / "project")
    # Nothing runs from this environment: bytecode would cost CPU and prove nothing.
    env = _environment(completed) | {"UV_COMPILE_BYTECODE": "0"}
    _run([refresh_locks.uv_binary(), "sync", "--locked"], project, env)


#: Project names that sort before, among and after every locked package.
SORT_POSITIONS = ("aaa-bot", "maple-bot", "zzz-bot")


def _lock_sets_with_names() -> list[Any]:
    return [
        pytest.param(answers, SORT_POSITIONS[i % 3], id=f"{key}-{SORT_POSITIONS[i % 3]}")
        for i, (key, answers) in enumerate(refresh_locks.dependency_sets().items())
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("answers", "slug"), _lock_sets_with_names())
def test_rendered_lock_is_the_one_uv_writes(
    answers: dict[str, Any], slug: str, tmp_path: Path
) -> None:
    """An owner's first `uv lock` must not move anything in the rendered lock.

    uv leaves a lock it finds satisfied untouched, so the project's version is
    bumped to make it write the file again (keeping every pin); the result must
    differ from the rendered lock in that one line only. Otherwise the next
    template lock change would conflict with the owner's relocked file.
    """
    project, completed = _render({**answers, "project_slug": slug}, tmp_path / "project")
    rendered = (project / "uv.lock").read_text(encoding="utf-8")
    own = f'name = "{slug}"\nversion = "0.1.0"\n'
    assert rendered.count(own) == 1, f"no package block for {slug} in the rendered lock"
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(
        text.replace('version = "0.1.0"', 'version = "0.1.1"', 1), encoding="utf-8"
    )
    _run([refresh_locks.uv_binary(), "lock"], project, _environment(completed))
    relocked = (project / "uv.lock").read_text(encoding="utf-8")
    assert relocked == rendered.replace(own, own.replace("0.1.0", "0.1.1"))


@pytest.mark.slow
@pytest.mark.parametrize("python_version", matrix.choices("python_version"))
def test_the_lock_installs_on_every_python_version(python_version: str, tmp_path: Path) -> None:
    # The locks are keyed by dependencies only, so one lock serves each answer.
    answers = {"runtime": "python", "python_version": python_version}
    project, completed = _render(answers, tmp_path / "project")
    env = _environment(completed)
    uv = refresh_locks.uv_binary()
    _run([uv, "sync", "--locked"], project, env)
    check = f"import sys; import {completed['package_name']}; print(sys.version)"
    _run([uv, "run", "--locked", "python", "-c", check], project, env)


def test_every_kept_lock_matches_the_pyproject_it_serves(
    rendered_matrix: Any, tmp_path: Path
) -> None:
    # Fast and offline (an empty uv cache): uv compares the lock with the
    # rendered pyproject.toml without resolving. A dependency changed in the
    # template without refreshing the locks fails here, not only in the slow tier.
    trees: dict[str, Path] = {}
    for combo in matrix.combinations():
        if combo.answers.get("runtime") == "python":
            answers = matrix.complete({**matrix.REQUIRED_ANSWERS, **combo.answers})
            trees.setdefault(refresh_locks.lock_key(answers), rendered_matrix.tree(combo))
    env = _environment({"python_version": LOCK_CHECK_PYTHON, "database": "none"})
    env |= {"UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "empty-cache")}
    stale = []
    for key, tree in sorted(trees.items()):
        result = subprocess.run(
            [refresh_locks.uv_binary(), "lock", "--check"],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            stale.append(f"locks/{key}.lock:\n{result.stderr}")
    assert not stale, "run hooks/refresh_locks.py and commit locks/\n" + "\n".join(stale)


def test_every_dependency_set_has_a_kept_lock_and_no_lock_is_orphaned() -> None:
    # Fails when a template change adds or drops a dependency set: run
    # hooks/refresh_locks.py and commit locks/.
    wanted = set(refresh_locks.dependency_sets())
    kept = {path.stem for path in refresh_locks.LOCKS.glob("*.lock")}
    assert wanted == kept


def test_one_kept_lock_serves_every_python_version() -> None:
    # The locks are keyed by dependencies only: each must hold for every
    # python_version answer, so each requires the oldest choice or newer.
    oldest = min(matrix.choices("python_version"), key=lambda v: tuple(map(int, v.split("."))))
    for path in refresh_locks.LOCKS.glob("*.lock"):
        head = path.read_text(encoding="utf-8").split("\n[[package]]", 1)[0]
        assert f'requires-python = ">={oldest}"' in head, path.name


#: A table an owner adds, in a module of its own: a datetime, a bool, a text,
#: a foreign key and an index.
NEW_MODELS = '''"""Reminders: something to tell a member at a given time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base


class Reminder(Base):
    """Something to tell a member at a given time."""

    __tablename__ = "reminders"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger, index=True)
    text: Mapped[str] = mapped_column(Text)
    done: Mapped[bool] = mapped_column(default=False)
    due_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    state_key: Mapped[str | None] = mapped_column(ForeignKey("bot_state.key"))
'''


def _documented_revision_command(project: Path) -> list[str]:
    """The "write a migration" command exactly as the bot's docs give it."""
    docs = (project / "docs" / "development.md").read_text(encoding="utf-8")
    found = re.findall(r'`(uv run python -m [\w.]+\.migrations "[^"`]+")`', docs)
    assert len(found) == 1, f"docs/development.md names {found} for writing a migration"
    return shlex.split(found[0])


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_the_documented_add_a_table_command_writes_a_working_migration(
    database: str, tmp_path: Path, mypy_cache: Path
) -> None:
    """An owner adds a table the way the docs say; the project stays green.

    A new module in tables/ holds models with the column kinds a bot needs
    (models.py, the template's, is left alone), the documented command writes
    the revision, and then the revision passes ruff
    and mypy as written, applies, undoes and reapplies (the bot's own
    tests/test_migrations.py, against the real database), matches the models,
    and is numbered after m0001_initial.py.
    """
    project, answers = _render({"runtime": "python", "database": database}, tmp_path / "bot")
    package = answers["package_name"]
    env = _environment(answers)
    uv = refresh_locks.uv_binary()
    template_models = (project / "src" / package / "models.py").read_text(encoding="utf-8")
    models = project / "src" / package / "tables" / "reminders.py"
    models.write_text(NEW_MODELS, encoding="utf-8")
    _run([uv, "sync", "--locked"], project, env)

    versions = project / "src" / package / "migrations" / "versions"
    before = {path.name for path in versions.glob("*.py")}
    _run(_documented_revision_command(project), project, env)
    written = sorted({path.name for path in versions.glob("*.py")} - before)
    assert len(written) == 1, written
    revision = (versions / written[0]).read_text(encoding="utf-8")
    assert 'create_table(\n        "reminders"' in revision

    _run([uv, "run", "--locked", "ruff", "check", "."], project, env)
    _run([uv, "run", "--locked", "ruff", "format", "--check", "."], project, env)
    with shared_mypy_cache(mypy_cache) as mypy_env:
        _run([uv, "run", "--locked", "mypy"], project, env | mypy_env)
    tests = ["tests/test_migrations.py", "-p", "no:cacheprovider", "-p", "no:randomly"]
    _run([uv, "run", "--locked", "pytest", *tests], project, env)
    assert (project / "src" / package / "models.py").read_text(encoding="utf-8") == template_models
    # The revision ids count up from m0001_initial.py's "0001".
    assert re.fullmatch(r"m0002_\w+\.py", written[0]), written[0]
    assert 'revision: str = "0002"' in revision
    assert 'down_revision: str | Sequence[str] | None = "0001"' in revision
