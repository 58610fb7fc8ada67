"""`copier update` works on real history: a bot made by an earlier release takes this one.

Every scenario generates a bot from a commit of this repository's own history
(BASE, the first published state), makes the edits an owner makes, commits,
and updates to the working tree's HEAD the way a user does. It then requires
what docs/updating.md promises: no conflict markers anywhere, every owner edit
kept, a lock uv accepts, and the bot's own toolchain green.

The history must be present (a full clone, as CI makes); a shallow clone fails
with a message rather than skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_generated_node import refresh_node_locks
from test_generated_python import _environment, refresh_locks, shared_mypy_cache
from test_railway_config import CLI_EVAL

import matrix
from conftest import exclusive

ROOT = matrix.ROOT
#: The first published state of the template (CHANGELOG.md: 0.1.0, untagged).
BASE = "f367474ca95c2ab6481f7fd5cb78b9a8765ed5a3"
COPIER = str(Path(sys.executable).parent / "copier")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Pingu Owner",
    "GIT_AUTHOR_EMAIL": "owner@example.com",
    "GIT_COMMITTER_NAME": "Pingu Owner",
    "GIT_COMMITTER_EMAIL": "owner@example.com",
}
MARKERS = re.compile(r"^(<<<<<<<|>>>>>>>)( |$)", re.M)
#: Longest any one command may take.
TIMEOUT = 900


def run(*argv: str, cwd: Path, env: dict[str, str] | None = None, ok: bool = True) -> str:
    """Run a command; unless ``ok`` is False a failure fails the test with its output."""
    proc = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**(env or os.environ), **GIT_ENV, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
    )
    output = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0, f"`{' '.join(argv)}` exited {proc.returncode}:\n{output}"
    return output


def commit_all(repo: Path, message: str) -> None:
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "-m", message, cwd=repo)


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's history, with the working tree as its newest commit.

    Copier records the commit a bot was made from; a template with uncommitted
    changes records a commit that exists only in Copier's temporary clone, and
    the next update could not find it. A clone that commits the working tree
    is what a user's clean checkout would be.
    """
    proc = subprocess.run(
        ["git", "cat-file", "-e", f"{BASE}^{{commit}}"], cwd=ROOT, capture_output=True, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"commit {BASE[:7]} is not in this clone's history: clone the template in full "
            "(no --depth) to run the update tests"
        )
    repo = tmp_path_factory.mktemp("template") / "copier-railway-bot"
    run("git", "clone", "-q", "--no-local", str(ROOT), str(repo), cwd=repo.parent)
    run("git", "rm", "-q", "-r", ".", cwd=repo)
    shutil.copytree(
        ROOT,
        repo,
        dirs_exist_ok=True,
        ignore=matrix.NOT_THE_TEMPLATE,
    )
    run("git", "add", "-A", cwd=repo)
    if run("git", "status", "--porcelain", cwd=repo):
        run("git", "commit", "-q", "-m", "The working tree under test", cwd=repo)
    return repo


def generate(template: Path, dst: Path, *, ref: str = BASE, **answers: Any) -> Path:
    """A bot from ``ref`` (BASE unless told), committed as its owner would after the first copy."""
    data = {"github_repository": "octocat/pingu-bot", **answers}
    argv = [COPIER, "copy", "--vcs-ref", ref, "--defaults", "--quiet"]
    for key, value in data.items():
        argv += ["--data", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    run(*argv, str(template), str(dst), cwd=dst.parent)
    run("git", "init", "-q", "-b", "main", cwd=dst)
    commit_all(dst, "Start from copier-railway-bot")
    return dst


def update(bot: Path, *args: str) -> str:
    """`copier update` to this checkout's HEAD, then the generated checks."""
    out = run(
        COPIER, "update", "--defaults", "--skip-answered", "--vcs-ref", "HEAD", *args, cwd=bot
    )
    out += run("scripts/template-update.sh", "--check", cwd=bot, env=bot_env(bot))
    return out


def bot_env(bot: Path) -> dict[str, str]:
    answers = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))
    return _environment({"python_version": answers["python_version"], **answers})


def conflicted(bot: Path) -> list[str]:
    found = []
    for path in bot.rglob("*"):
        if ".git" in path.parts or ".venv" in path.parts or not path.is_file():
            continue
        if path.suffix == ".rej" or MARKERS.search(
            path.read_text(encoding="utf-8", errors="replace")
        ):
            found.append(str(path.relative_to(bot)))
    return found


def toolchain(bot: Path, mypy_cache: Path, suite_lock: Path, *, tests: bool = True) -> None:
    env = bot_env(bot)
    uv = refresh_locks.uv_binary()
    run(uv, "lock", "--check", cwd=bot, env=env)
    run(uv, "sync", "--locked", cwd=bot, env=env)
    run(uv, "run", "--locked", "ruff", "check", ".", cwd=bot, env=env)
    run(uv, "run", "--locked", "ruff", "format", "--check", ".", cwd=bot, env=env)
    with shared_mypy_cache(mypy_cache) as mypy_env:
        run(uv, "run", "--locked", "mypy", cwd=bot, env=env | mypy_env)
    if tests:
        with exclusive(suite_lock):
            run(uv, "run", "--locked", "pytest", "-q", "-p", "no:cacheprovider", cwd=bot, env=env)


# --------------------------------------------------------------- owner edits --
WEATHER_COG = '''\
"""/weather: the owner's own command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from ..bot import Bot


class Weather(commands.Cog):
    """Today's weather."""

    @app_commands.command(description="Today's weather.")
    async def weather(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Sunny.", ephemeral=True)


async def setup(bot: Bot) -> None:
    """Add the cog (discord.py's extension entry point)."""
    await bot.add_cog(Weather())
'''

OWNER_NOTES = {
    "README.md": "\n## Our server\n\nPingu lives in the Antarctic Discord.\n",
    "DEPLOYMENT.md": "\nOwner's note: production runs in the EU region.\n",
}


def edit_like_an_owner(bot: Path) -> None:
    """The edits of the issue this test comes from, each in a place of its own."""
    package = next((bot / "src").iterdir()).name
    (bot / "src" / package / "cogs" / "weather.py").write_text(WEATHER_COG, encoding="utf-8")
    for name, note in OWNER_NOTES.items():
        path = bot / name
        text = path.read_text(encoding="utf-8")
        first_break = text.index("\n\n")  # after the title: a line the template keeps
        path.write_text(text[:first_break] + "\n" + note.rstrip("\n") + text[first_break:])
    env_example = bot / ".env.example"
    env_example.write_text(
        env_example.read_text(encoding="utf-8")
        + "\n# The owner's own setting.\nWEATHER_CITY=Ushuaia\n",
        encoding="utf-8",
    )
    dockerfile = next(p for p in (bot / "Dockerfile", bot / "docker" / "Dockerfile") if p.is_file())
    dockerfile.write_text(
        dockerfile.read_text(encoding="utf-8")
        + '\nLABEL org.opencontainers.image.vendor="Pingu Owner"\n',
        encoding="utf-8",
    )
    # A dependency of the owner's, added and locked the way uv does it.
    run(refresh_locks.uv_binary(), "add", "--no-sync", "humanize", cwd=bot, env=bot_env(bot))
    commit_all(bot, "Add /weather, a dependency and notes")


def assert_owner_edits_kept(bot: Path) -> None:
    package = next((bot / "src").iterdir()).name
    assert (bot / "src" / package / "cogs" / "weather.py").read_text() == WEATHER_COG
    for name, note in OWNER_NOTES.items():
        assert note.strip() in (bot / name).read_text(encoding="utf-8"), name
    assert "WEATHER_CITY=Ushuaia" in (bot / ".env.example").read_text(encoding="utf-8")
    dockerfile = next(p for p in (bot / "Dockerfile", bot / "docker" / "Dockerfile") if p.is_file())
    assert 'image.vendor="Pingu Owner"' in dockerfile.read_text(encoding="utf-8")
    pyproject = tomllib.loads((bot / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(d.startswith("humanize") for d in pyproject["project"]["dependencies"])
    assert 'name = "humanize"' in (bot / "uv.lock").read_text(encoding="utf-8")
    # The owner's cog is loaded without any edit to a template file.
    check = textwrap.dedent(
        f"""
        import asyncio

        import discord
        from discord.ext import commands

        from {package}.bot import Bot


        async def main() -> None:
            plain = commands.Bot(command_prefix="!", intents=discord.Intents.none())
            plain.engine = None  # the economy cog keeps it; nothing connects here
            await Bot.load_cogs(plain)
            print(sorted(command.name for command in plain.tree.get_commands()))


        asyncio.run(main())
        """
    )
    out = run(
        refresh_locks.uv_binary(), "run", "--locked", "python", "-c", check,
        cwd=bot, env=bot_env(bot),
    )  # fmt: skip
    assert "'weather'" in out and "'ping'" in out, out


DOCUMENTED_FILE = re.compile(r"^```(?:python|ts)\n(?:# |// )(\S+)\n(.*?)^```$", re.M | re.S)


def add_the_documented_command(bot: Path) -> list[str]:
    """The command and test docs/development.md shows, saved where it says, verbatim."""
    docs = (bot / "docs" / "development.md").read_text(encoding="utf-8")
    section = docs[docs.index("### A command of your own, with its test") :]
    found = DOCUMENTED_FILE.findall(section[: section.index("\n## ")])
    assert len(found) == 2, found  # the command, then its test
    for path, body in found:
        target = bot / path
        assert not target.exists(), f"the documented {path} would overwrite a file"
        first = "# " if path.endswith(".py") else "// "
        target.write_text(f"{first}{path}\n{body}", encoding="utf-8")
    return [path for path, _ in found]


# ------------------------------------------------------------------ scenarios --
@pytest.mark.slow
@pytest.mark.bot_suite(runs=2)  # the update's own checks, then the toolchain
def test_update_from_the_first_release_keeps_every_owner_edit(
    template_repo: Path, tmp_path: Path, mypy_cache: Path, bot_suite_lock: Path
) -> None:
    bot = generate(template_repo, tmp_path / "pingu-bot")
    edit_like_an_owner(bot)

    output = update(bot)

    assert not conflicted(bot), output
    assert "No conflicts." in output
    assert_owner_edits_kept(bot)
    # The bot backed up from GitHub Actions: backup_path, a later question,
    # keeps that, instead of the default a new bot gets (a cron service that
    # needs storage, keys and a role before it works).
    answers = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert (answers["backups"], answers["backup_path"]) == (True, "actions"), answers
    for kept in (".github/workflows/backup.yml", "scripts/backup.sh", "scripts/restore.sh"):
        assert (bot / kept).is_file(), f"the update deleted the owner's {kept}"
    assert "-backup" not in (bot / ".railway" / "railway.py").read_text(encoding="utf-8")
    # Both Copier's message and the script say where the changelog is.
    assert output.count(f"{template_repo}/CHANGELOG.md") == 2, output
    # The owner then follows the docs: a command and its test, linted,
    # type-checked and run with the rest of the suite.
    assert add_the_documented_command(bot) == [
        f"src/{answers['project_slug'].replace('-', '_')}/cogs/coin.py",
        "tests/test_coin.py",
    ]
    toolchain(bot, mypy_cache, bot_suite_lock)


@pytest.mark.slow
@pytest.mark.bot_suite(runs=5)  # a toolchain per answer change, and more
def test_answer_changes_on_update_keep_a_relocked_owners_bot_green(
    template_repo: Path, tmp_path: Path, mypy_cache: Path, bot_suite_lock: Path
) -> None:
    """none to postgres, Redis on, staging off, on a bot that added a dependency."""
    bot = generate(
        template_repo, tmp_path / "pingu-bot", database="none", railway_config="json", staging=True
    )
    edit_like_an_owner(bot)
    update(bot)  # json is refused now: the update moves the bot to the IaC file
    commit_all(bot, "Update from the template")
    for change in ("database=postgres", "redis=true", "staging=false"):
        # The way docs/updating.md says to change an answer: the bot's own script.
        output = run(
            "scripts/template-update.sh", "--vcs-ref", "HEAD", "--data", change,
            cwd=bot, env=bot_env(bot),
        )  # fmt: skip
        assert not conflicted(bot), f"{change}:\n{output}"
        toolchain(bot, mypy_cache, bot_suite_lock, tests=False)
        commit_all(bot, f"Template answer {change}")
    answers = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert (answers["database"], answers["redis"], answers["staging"]) == ("postgres", True, False)
    assert answers["railway_config"] == "iac"
    assert_owner_edits_kept(bot)
    toolchain(bot, mypy_cache, bot_suite_lock)


# --------------------------------------------- Config as Code to the IaC file --
def iac_settings(bot: Path) -> dict[str, Any]:
    """build/deploy of the bot's service, evaluated the way the Railway CLI does."""
    env = {**os.environ, "IAC_ENVIRONMENT": "production"}
    proc = subprocess.run(
        [sys.executable, "-c", CLI_EVAL, ".railway/railway.py"],
        cwd=bot,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    graph = json.loads(proc.stdout)["project"]
    services = {r["name"]: r for r in graph["resources"] if r["type"] == "service"}
    # The bot, and for PostgreSQL the backup cron service the update adds
    # (backups now run inside the project by default).
    assert set(services) <= {bot.name, f"{bot.name}-backup"}, sorted(services)
    return services[bot.name]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "database"), [("json", "sqlite"), ("toml", "postgres")])
def test_a_config_as_code_bot_moves_to_the_iac_file(
    kind: str, database: str, template_repo: Path, tmp_path: Path
) -> None:
    bot = generate(template_repo, tmp_path / "pingu-bot", railway_config=kind, database=database)
    legacy = bot / f"railway.{kind}"
    text = legacy.read_text(encoding="utf-8")
    old = json.loads(text) if kind == "json" else tomllib.loads(text)
    # The owner gave the healthcheck more time.
    assert old["deploy"]["healthcheckTimeout"] != 240
    if kind == "json":
        edited = text.replace(
            f'"healthcheckTimeout": {old["deploy"]["healthcheckTimeout"]}',
            '"healthcheckTimeout": 240',
        )
    else:
        edited = text.replace(
            f"healthcheckTimeout = {old['deploy']['healthcheckTimeout']}",
            "healthcheckTimeout = 240",
        )
    assert edited != text
    legacy.write_text(edited, encoding="utf-8")
    commit_all(bot, "Give the healthcheck four minutes")

    output = update(bot)

    assert not legacy.exists()
    assert not conflicted(bot), output
    answers = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["railway_config"] == "iac"
    service = iac_settings(bot)
    if database == "sqlite":
        # 1.4.0's one deliberate change (CHANGELOG "Owners must"): a SQLite
        # bot starts as root only long enough to hand its volume to the app user.
        old["deploy"]["startCommand"] = (
            f"/usr/local/bin/drop-privileges {old['deploy']['startCommand']}"
        )
    for section in ("build", "deploy"):
        for key, value in old[section].items():
            if key != "healthcheckTimeout":
                assert service[section][key] == value, (section, key)
    # The edited value is not silently lost: the update's output names it.
    assert f"deploy.healthcheckTimeout: 240 in railway.{kind}" in output, output
    assert 'DEPLOYMENT.md,\n"A service that used railway.json or railway.toml"' in output
    # SQLite's volume came from a CLI command, not the file; the IaC file declares it.
    if database == "sqlite":
        mounts = service["volumeAttachments"]
        assert [m["mountPath"] for m in mounts.values()] == ["/data"]


# ---------------------------------------------------------------- quick start --
@pytest.mark.slow
def test_quick_start_bot_updates_from_inside_itself(tmp_path: Path) -> None:
    """The README's exact first command, in a clone with nothing beside it."""
    # The working tree as a repository of its own, alone in a directory.
    clone = tmp_path / "empty" / "copier-railway-bot"
    shutil.copytree(
        ROOT,
        clone,
        ignore=matrix.NOT_THE_TEMPLATE,
    )
    run("git", "init", "-q", "-b", "main", cwd=clone)
    commit_all(clone, "The template as tested")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    run("bash", "-c", matrix.quick_start()[0], cwd=clone, env=env)
    bot = clone.parent / "pingu-bot"
    source = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))["_src_path"]
    assert Path(source).is_absolute(), f"_src_path {source!r}: copier update could not find it"
    run("git", "init", "-q", "-b", "main", cwd=bot)
    commit_all(bot, "Start")
    # An update as docs/updating.md gives it, run inside the bot: the
    # recorded source is found, and the same version changes nothing.
    out = run("scripts/template-update.sh", cwd=bot, env=bot_env(bot))
    assert "No conflicts." in out
    assert run("git", "status", "--porcelain", cwd=bot) == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runtime", "railway_config", "deletes"),
    [
        ("python", "iac", "The deploy workflow stops on such a plan"),
        ("node", "none", "Nothing deletes them for you"),
    ],
)
def test_answers_turned_off_name_what_railway_still_runs(
    template_repo: Path, tmp_path: Path, runtime: str, railway_config: str, deletes: str
) -> None:
    """redis=false and backups=false remove code; the script says what Railway keeps, and how."""
    bot = generate(
        template_repo, tmp_path / "pingu-bot", ref="HEAD", runtime=runtime,
        database="postgres", redis=True, backups=True, railway_config=railway_config,
    )  # fmt: skip
    env = bot_env(bot) if runtime == "python" else node_update_env(offline=False)
    output = run(
        COPIER, "update", "--defaults", "--skip-answered", "--vcs-ref", "HEAD",
        "--data", "redis=false", "--data", "backups=false", cwd=bot,
    )  # fmt: skip
    output += run("scripts/template-update.sh", "--check", cwd=bot, env=env)

    assert not conflicted(bot), output
    assert "Answers turned off: Railway still has what they used." in output, output
    assert "  the Redis service and its data (redis is now false)" in output, output
    assert "  the backup cron service pingu-bot-backup" in output, output
    assert "Postgres service" not in output, output
    assert deletes in output, output
    commit_all(bot, "Redis and backups off")

    # The same answers again: nothing turned off, nothing said.
    output = run("scripts/template-update.sh", "--check", cwd=bot, env=env)
    assert "Answers turned off" not in output, output


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_the_readme_first_commit_makes_the_repository_updates_start_from(
    tree_for, tmp_path: Path, runtime: str
) -> None:
    """The bot's README gives the first commit's command; run verbatim, it leaves a clean tree."""
    bot = shutil.copytree(tree_for({"runtime": runtime}), tmp_path / "bot")
    readme = (bot / "README.md").read_text(encoding="utf-8")
    local = readme[readme.index("## Run it locally") :]
    command = re.search(r"```sh\n(git init[^\n]*)\n```", local)
    assert command, "README.md's 'Run it locally' starts with the first commit's command"

    run("bash", "-c", command.group(1), cwd=bot)

    assert run("git", "rev-list", "--count", "HEAD", cwd=bot).strip() == "1"
    assert run("git", "branch", "--show-current", cwd=bot).strip() == "main"
    assert run("git", "status", "--porcelain", cwd=bot) == ""


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_the_update_script_refuses_a_recopy(tree_for, tmp_path: Path, runtime: str) -> None:
    """`copier recopy` drops owner edits to template files: the script will not run one."""
    bot = shutil.copytree(tree_for({"runtime": runtime}), tmp_path / "bot")
    run("git", "init", "-q", "-b", "main", cwd=bot)
    commit_all(bot, "The bot as generated")

    proc = subprocess.run(
        ["scripts/template-update.sh", "recopy"],
        cwd=bot, capture_output=True, text=True, check=False, timeout=TIMEOUT,
    )  # fmt: skip

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "never runs 'copier recopy'" in proc.stderr
    assert "scripts/template-update.sh" in proc.stderr
    assert run("git", "status", "--porcelain", cwd=bot) == ""


def test_the_first_release_is_in_the_changelog() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert BASE[:7] in changelog, "CHANGELOG.md must name the commit the update tests start from"


#: Corrections made to released sections, each by the one commit that made
#: it: (commit, version) pairs. a24e7a5 moved four "Owners must" items that
#: had reached 1.0.0 after its release into 1.1.0, which brought them.
CHANGELOG_CORRECTIONS = {
    ("a24e7a5edba4b989cb2a0fdee5436e2a282a5762", "1.0.0"),
    ("a24e7a5edba4b989cb2a0fdee5436e2a282a5762", "1.1.0"),
}
SECTION = re.compile(r"^## (\d+\.\d+\.\d+) \(", re.M)


def changelog_sections(text: str) -> list[tuple[str, str]]:
    """CHANGELOG.md's release sections, newest first: (version, whole text)."""
    starts = list(SECTION.finditer(text))
    return [
        (match.group(1), text[match.start() : nxt.start() if nxt else len(text)].rstrip() + "\n")
        for match, nxt in zip(starts, [*starts[1:], None], strict=True)
    ]


def released_section_changes(states: list[tuple[str, str]]) -> list[str]:
    """Where a released section changed: a version is released once a newer
    one stands above it, and from then on its text must stay as it was.

    ``states`` are (commit, CHANGELOG.md text), oldest first.
    """
    released: dict[str, str] = {}
    changes = []
    for commit, text in states:
        sections = changelog_sections(text)
        found = dict(sections)
        for version, before in list(released.items()):
            now = found.get(version)
            if now == before:
                continue
            if (commit, version) in CHANGELOG_CORRECTIONS and now is not None:
                released[version] = now
                continue
            what = "removed" if now is None else "changed"
            changes.append(f"{commit[:10]} {what} the released section {version}")
        for version, section in sections[1:]:
            released.setdefault(version, section)
    return changes


def test_released_changelog_sections_never_change() -> None:
    """An owner reads only the sections after the version they had: those must be final."""
    shallow = run("git", "rev-parse", "--is-shallow-repository", cwd=ROOT).strip()
    if shallow != "false":
        pytest.fail("this clone is shallow: clone the template in full (no --depth) to check it")
    commits = run(
        "git", "log", "--first-parent", "--reverse", "--format=%H", "--", "CHANGELOG.md", cwd=ROOT
    ).split()
    states = [(c, run("git", "show", f"{c}:CHANGELOG.md", cwd=ROOT)) for c in commits]
    states.append(("the working tree", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")))
    assert released_section_changes(states) == []


def test_the_changelog_check_catches_an_edited_release() -> None:
    """The check above, against the edit it exists for: an item added to a released section."""
    one = "## 1.0.0 (2026-11-30)\n\n### Added\n\n- A.\n"
    two = "## 1.1.0 (2026-12-01)\n\n### Added\n\n- B.\n\n" + one
    edited = two.replace("- A.\n", "- A.\n- Also C.\n")
    states = [("c1", one), ("c2", one + "\n- Still 1.0.0.\n"), ("c3", two), ("c4", edited)]
    assert released_section_changes(states) == ["c4 changed the released section 1.0.0"]
    assert released_section_changes([("c1", two), ("c2", two.replace(one, ""))]) == [
        "c2 removed the released section 1.0.0"
    ]


def test_update_documentation_names_only_released_versions() -> None:
    released = set(re.findall(r"^## \[?(\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.M))
    assert released
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        # A template release as the docs name it (v1.4.0), not a tool's file name.
        text = path.read_text(encoding="utf-8")
        for version in re.findall(r"(?<![\w-])v(\d+\.\d+\.\d+)\b", text):
            assert version in released, f"{path.name} names v{version}, which CHANGELOG.md lacks"
    for path in (ROOT / "template").rglob("*.jinja"):
        for version in re.findall(r"--vcs-ref v(\d+\.\d+\.\d+)", path.read_text(encoding="utf-8")):
            assert version in released, f"{path.name} names v{version}, which CHANGELOG.md lacks"


# ------------------------------------------------------------------ Node.js --
# A Node bot updates on the same promise. No release before this one offers
# runtime=node, so its history starts here: the bot is made from the working
# tree's commit and updated to a template commit made on top of it. The
# update script's own Node branch is also tested on the situation it exists
# for: Copier has left conflicts in package.json and package-lock.json, as
# it does when the owner added a dependency beside a pin the template changed.
NODE_BOT = {"runtime": "node", "database": "sqlite", "redis": False, "backups": False}

ROLL_COMMAND = """\
/** /roll: the owner's own command. */
import { SlashCommandBuilder } from "discord.js";
import type { SlashCommand } from "./types.ts";

const roll: SlashCommand = {
  data: new SlashCommandBuilder().setName("roll").setDescription("Roll a die.").toJSON(),
  async execute(interaction) {
    await interaction.reply(`You rolled ${String(1 + Math.floor(Math.random() * 6))}.`);
  },
};

export default roll;
"""
#: The template's side of the update: a template-owned module and the
#: manifest's scripts change, as an infrastructure improvement does.
HEALTH_TS = "template/{% if runtime == 'node' %}src{% endif %}/health.ts"
PACKAGE_JSON = "template/{% if runtime == 'node' %}package.json{% endif %}.jinja"
TEMPLATE_NOTE = "// The template's newer health server.\n"
TEMPLATE_SCRIPT = '    "prestart": "npm run build",\n'


@pytest.fixture(scope="module")
def node_template_repo(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of the template under test, to which a newer commit can be added."""
    repo = tmp_path_factory.mktemp("node-template") / "copier-railway-bot"
    run("git", "clone", "-q", "--no-local", str(template_repo), str(repo), cwd=repo.parent)
    return repo


def release_a_node_change(repo: Path) -> None:
    """Commit, on top of the template, a change to what a Node bot gets."""
    health = repo / HEALTH_TS
    health.write_text(health.read_text(encoding="utf-8") + TEMPLATE_NOTE, encoding="utf-8")
    manifest = repo / PACKAGE_JSON
    text = manifest.read_text(encoding="utf-8")
    anchor = '    "start": "node dist/main.js",\n'
    assert anchor in text, "the template's package.json no longer has this start script"
    manifest.write_text(text.replace(anchor, TEMPLATE_SCRIPT + anchor), encoding="utf-8")
    commit_all(repo, "A newer health server and a prestart script")


def node_toolchain(bot: Path, suite_lock: Path, *, tests: bool = True) -> str:
    """What the bot's CI runs; returns the commands its own loader finds."""
    env = node_update_env(offline=False)
    run("npm", "ci", cwd=bot, env=env)
    run("npm", "run", "lint", cwd=bot, env=env)
    run("npm", "run", "type-check", cwd=bot, env=env)
    if tests:
        with exclusive(suite_lock):
            run("npm", "test", cwd=bot, env=env)
    loader = (
        'const { loadCommands } = await import("./src/commands/index.ts");'
        "console.log((await loadCommands()).map((c) => c.data.name).join(','));"
    )
    return run("node", "--input-type=module", "-e", loader, cwd=bot, env=env).strip()


@pytest.mark.slow
@pytest.mark.bot_suite(runs=3)  # a toolchain after each update, the suite once
def test_node_update_keeps_owner_code_and_relocks_an_answer_change(
    node_template_repo: Path, tmp_path: Path, bot_suite_lock: Path
) -> None:
    bot = generate(node_template_repo, tmp_path / "maple-bot", ref="HEAD", **NODE_BOT)
    # The owner's edits: a command of their own (found by the loader, no
    # template file touched), a note in the README, and a dependency added
    # the way npm adds one.
    (bot / "src" / "commands" / "roll.ts").write_text(ROLL_COMMAND, encoding="utf-8")
    readme = bot / "README.md"
    text = readme.read_text(encoding="utf-8")
    first_break = text.index("\n\n")
    note = OWNER_NOTES["README.md"].rstrip("\n")
    readme.write_text(text[:first_break] + "\n" + note + text[first_break:], encoding="utf-8")
    npm_install = ("npm", "install", "--save-exact", "--ignore-scripts", "ms@2.1.3")
    run(*npm_install, cwd=bot, env=node_update_env(offline=False))
    commit_all(bot, "Add /roll, ms and a note")
    release_a_node_change(node_template_repo)

    output = run(COPIER, "update", "--defaults", "--skip-answered", "--vcs-ref", "HEAD", cwd=bot)
    output += run("scripts/template-update.sh", "--check", cwd=bot, env=node_update_env())

    assert not conflicted(bot), output
    assert "No conflicts." in output, output
    # The template's change arrived; every edit of the owner's stayed.
    assert (bot / "src" / "health.ts").read_text(encoding="utf-8").endswith(TEMPLATE_NOTE)
    manifest = json.loads((bot / "package.json").read_text(encoding="utf-8"))
    assert manifest["scripts"]["prestart"] == "npm run build"
    assert manifest["dependencies"]["ms"] == "2.1.3"
    assert (bot / "src" / "commands" / "roll.ts").read_text(encoding="utf-8") == ROLL_COMMAND
    assert note.strip() in readme.read_text(encoding="utf-8")
    assert node_toolchain(bot, bot_suite_lock, tests=False) == "balance,daily,help,ping,roll"
    commit_all(bot, "Update from the template")

    # An answer changed the way docs/updating.md says: the bot's own script.
    # The template's lock for Redis meets the owner's lock with ms in it.
    output = run(
        "scripts/template-update.sh", "--vcs-ref", "HEAD", "--data", "redis=true",
        cwd=bot, env=node_update_env(offline=False),
    )  # fmt: skip
    assert not conflicted(bot), output
    manifest = json.loads((bot / "package.json").read_text(encoding="utf-8"))
    assert {"ioredis", "ms"} <= set(manifest["dependencies"]), manifest["dependencies"]
    lock = json.loads((bot / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"][""]["dependencies"] == manifest["dependencies"]
    assert {"node_modules/ioredis", "node_modules/ms"} <= set(lock["packages"])
    # The owner then follows the docs: a command and its test, linted,
    # type-checked and run with the rest of the suite.
    assert add_the_documented_command(bot) == ["src/commands/coin.ts", "tests/coin.test.ts"]
    assert node_toolchain(bot, bot_suite_lock) == "balance,coin,daily,help,ping,roll"


def node_bot_with_conflicts(tree: Path, dst: Path, scripts_conflict: bool = False) -> Path:
    """A committed copy of a Node render, then the conflicts an update leaves."""
    bot = shutil.copytree(tree, dst)
    run("git", "init", "-q", "-b", "main", cwd=bot)
    commit_all(bot, "The bot as generated")
    manifest = (bot / "package.json").read_text(encoding="utf-8")
    block = manifest[manifest.index('    "discord.js"') : manifest.index('    "zod"')]
    assert '    "pino": "10.4.0",\n' in block, block
    # The owner's side: an older pino, and ws (already in the lock as a dev
    # dependency, so relocking needs no download) added as a dependency. The
    # template's side: its new pino.
    ours = block.replace('"pino": "10.4.0"', '"pino": "10.3.0"') + '    "ws": "8.23.0",\n'
    manifest = manifest.replace(
        block, f"<<<<<<< before updating\n{ours}=======\n{block}>>>>>>> after updating\n"
    )
    if scripts_conflict:
        line = '    "lint": '
        start = manifest.index(line)
        old = manifest[start : manifest.index("\n", start) + 1]
        mine = old.replace("eslint .", "eslint --max-warnings 0 .")
        manifest = manifest.replace(
            old, f"<<<<<<< before updating\n{mine}=======\n{old}>>>>>>> after updating\n"
        )
    (bot / "package.json").write_text(manifest, encoding="utf-8")
    lock = (bot / "package-lock.json").read_text(encoding="utf-8")
    version = '  "version": "0.1.0",\n'
    assert lock.splitlines(keepends=True)[2] == version  # the project's own version
    ours = '  "version": "0.0.9",\n'
    lock = lock.replace(
        version, f"<<<<<<< before updating\n{ours}=======\n{version}>>>>>>> after updating\n", 1
    )
    (bot / "package-lock.json").write_text(lock, encoding="utf-8")
    return bot


def node_update_env(*, offline: bool = True) -> dict[str, str]:
    """npm as the template's own tools run it: the pinned Node, npm's defaults
    for the lock whatever this machine's .npmrc says; by default no download,
    since everything the relock needs is already in the committed lock."""
    return {**refresh_node_locks.npm_env(), "npm_config_offline": str(offline).lower()}


def test_node_update_merges_dependency_conflicts_and_relocks(tree_for, tmp_path: Path) -> None:
    bot = node_bot_with_conflicts(tree_for(NODE_BOT), tmp_path / "bot")

    out = run("scripts/template-update.sh", "--check", cwd=bot, env=node_update_env())

    assert "package.json: merged 1 dependency conflict(s)" in out, out
    assert "package-lock.json: brought in step with package.json" in out, out
    assert "No conflicts." in out and "run 'npm ci' and 'npm test'" in out, out
    assert not MARKERS.search((bot / "package.json").read_text(encoding="utf-8"))
    manifest = json.loads((bot / "package.json").read_text(encoding="utf-8"))
    # The template's pin wins, the owner's own dependency stays, in npm's order.
    assert manifest["dependencies"]["pino"] == "10.4.0"
    assert manifest["dependencies"]["ws"] == "8.23.0"
    assert list(manifest["dependencies"]) == sorted(manifest["dependencies"])
    lock = json.loads((bot / "package-lock.json").read_text(encoding="utf-8"))
    root = lock["packages"][""]
    assert root["dependencies"] == manifest["dependencies"]
    assert root["devDependencies"] == manifest["devDependencies"]
    # What npm ci checks before it installs anything.
    run("npm", "ci", "--dry-run", "--ignore-scripts", cwd=bot, env=node_update_env())


def test_node_update_leaves_other_conflicts_for_a_person(tree_for, tmp_path: Path) -> None:
    bot = node_bot_with_conflicts(tree_for(NODE_BOT), tmp_path / "bot", scripts_conflict=True)
    lock_before = (bot / "package-lock.json").read_text(encoding="utf-8")

    proc = subprocess.run(
        ["scripts/template-update.sh", "--check"],
        cwd=bot,
        env=node_update_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out

    # The dependency conflict is merged; the one in "scripts" is not, so the
    # lock waits for it and the script exits 1 naming both files.
    text = (bot / "package.json").read_text(encoding="utf-8")
    assert "package.json: merged 1 dependency conflict(s)" in out, out
    assert text.count("<<<<<<< before updating") == 1, text
    assert '"ws": "8.23.0"' in text
    assert "not relocked while package.json has conflict markers" in out, out
    assert (bot / "package-lock.json").read_text(encoding="utf-8") == lock_before
    assert "Conflicts:" in out and "  package.json\n" in out and "  package-lock.json\n" in out
