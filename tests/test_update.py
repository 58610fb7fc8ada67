"""`copier update` pulls template improvements into a bot without losing the owner's edits."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import matrix

COPIER = str(Path(sys.executable).parent / "copier")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def run(*argv: str, cwd: Path) -> str:
    import os

    proc = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **GIT_ENV},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def commit_all(repo: Path, message: str) -> None:
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "-m", message, cwd=repo)


@pytest.fixture
def template_repo(tmp_path: Path) -> Path:
    """The template as a git repository with a first release tagged."""
    repo = tmp_path / "template"
    shutil.copytree(matrix.template_copy(), repo)
    run("git", "init", "-q", "-b", "main", cwd=repo)
    commit_all(repo, "Release 1.0.0")
    run("git", "tag", "v1.0.0", cwd=repo)
    return repo


@pytest.fixture
def bot(template_repo: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bot"
    run(
        COPIER,
        "copy",
        "--defaults",
        "--data",
        "github_repository=octocat/pingu-bot",
        "--data",
        "database=sqlite",
        str(template_repo),
        str(dst),
        cwd=tmp_path,
    )
    run("git", "init", "-q", "-b", "main", cwd=dst)
    commit_all(dst, "Start from the template")
    return dst


def test_update_keeps_owner_edits_and_applies_template_changes(
    template_repo: Path, bot: Path
) -> None:
    # The owner edits a generated file and adds one of their own.
    readme = bot / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\n## Our server rules\n\nBe kind.\n")
    (bot / "NOTES.md").write_text("# Notes\n\nOwner's file.\n")
    commit_all(bot, "Document our server rules")

    # The template ships an improvement in another file.
    editorconfig = template_repo / "template" / ".editorconfig"
    editorconfig.write_text(
        editorconfig.read_text(encoding="utf-8") + "\n[*.sql]\nindent_size = 2\n"
    )
    commit_all(template_repo, "Indent SQL files by two spaces")
    run("git", "tag", "v1.1.0", cwd=template_repo)

    run(COPIER, "update", "--defaults", "--skip-answered", cwd=bot)

    assert "Be kind." in readme.read_text(encoding="utf-8")
    assert (bot / "NOTES.md").read_text(encoding="utf-8") == "# Notes\n\nOwner's file.\n"
    assert "[*.sql]" in (bot / ".editorconfig").read_text(encoding="utf-8")
    answers = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["_commit"] == "v1.1.0"
    assert answers["database"] == "sqlite"
    assert not list(bot.rglob("*.rej")), "the update left conflicts"


def test_update_can_change_an_answer(bot: Path) -> None:
    """Turning an option on later adds its files, as a fresh copy would have."""
    assert "REDIS_URL" not in (bot / ".env.example").read_text(encoding="utf-8")
    run(COPIER, "update", "--defaults", "--skip-answered", "--data", "redis=true", cwd=bot)
    assert "REDIS_URL" in (bot / ".env.example").read_text(encoding="utf-8")
    answers = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["redis"] is True
