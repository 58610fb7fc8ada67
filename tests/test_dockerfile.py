"""The image of a generated bot, proven without a Docker engine.

No daemon exists here, so each property of the image is checked by the
closest honest means:

- structure: the rendered Dockerfile is parsed with dockerfile-parse and its
  instructions checked (pinned bases from includes/pins.jinja, uv copied
  from its image, dependency layer before the source, bytecode, non-root
  user, exec-form CMD that starts Python directly, no secret in ARG/ENV);
- labels: LABEL values are read back with Docker's double-quote rules, for
  hostile answers too, and must equal the answers byte for byte;
- build context: .dockerignore is applied to the rendered tree with Docker's
  matching rules (patternmatcher: `**`, `!` exceptions, parent directories),
  every COPY source must be in the context and every module of the bot too;
- install and run: the Dockerfile's own build-stage instructions (WORKDIR,
  COPY from the context, RUN uv sync ...) are replayed in a temporary
  directory with UV_PROJECT_ENVIRONMENT, the sources are deleted as the
  runtime stage does, and the result runs the bot's `migrate` and `check`
  against a real PostgreSQL/Redis, imports every module of the package, and
  runs the image's CMD until /health answers, then stops it with SIGTERM.

Not proven: that the base images exist and build (no registry, no engine),
the image's file ownership and user at run time, and signal delivery to PID 1.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from functools import cache
from pathlib import Path, PurePosixPath

import pytest
from dockerfile_parse import DockerfileParser
from jinja2 import Environment, FileSystemLoader

import matrix

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/15"
COMBOS = matrix.combinations()
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE|DATABASE_URL|REDIS_URL")

HOSTILE = {
    "project_name": 'Evil "$(rm -rf /)" {{ x }} Ünïcødé \\ `id` ${HOME}',
    "description": 'Says "hi" with $PATH, {% raw %} and a trailing backslash \\',
    "author_name": 'O\'Brien \\"quoted\\" $USER',
}


def answers_of(combo: matrix.Combination) -> dict:
    return matrix.complete({**matrix.REQUIRED_ANSWERS, **combo.answers})


def dockerfile_path(tree: Path, answers: dict) -> Path:
    return tree / ("Dockerfile" if answers["builder"] == "dockerfile" else "docker/Dockerfile")


@cache
def pinned_images(python_version: str) -> dict[str, str]:
    env = Environment(loader=FileSystemLoader(str(ROOT)))
    text = env.from_string(
        '{%- from "includes/pins.jinja" import images with context -%}{{ images | tojson }}'
    ).render(python_version=python_version)
    return json.loads(text)


# ------------------------------------------------------ Dockerfile parsing --
def stages(parser: DockerfileParser) -> list[dict]:
    """[{"from": image, "name": alias, "instructions": [(INSTR, value), ...]}]."""
    out: list[dict] = []
    for item in parser.structure:
        instr, value = item["instruction"], item["value"]
        if instr == "COMMENT":
            continue
        if instr == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            out.append({"from": words[0], "name": name, "instructions": []})
        else:
            assert out, f"{instr} before FROM"
            out[-1]["instructions"].append((instr, value))
    return out


def docker_words(text: str) -> list[str]:
    """Split an instruction's arguments into words the way Docker's shell lexer does.

    Outside quotes a backslash escapes any character; inside double quotes
    only ", $ and backslash; single quotes are literal. An unescaped $ is a
    variable reference: reported, as labels must never expand anything.
    """
    words, word, i, quote, in_word = [], [], 0, None, False
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                word.append(ch)
        elif quote == '"':
            if ch == '"':
                quote = None
            elif ch == "\\" and i + 1 < len(text) and text[i + 1] in '"$\\':
                i += 1
                word.append(text[i])
            elif ch == "$":
                raise ValueError(f"unescaped $ in {text!r}")
            else:
                word.append(ch)
        elif ch in " \t":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif ch in "\"'":
            quote, in_word = ch, True
        elif ch == "\\" and i + 1 < len(text):
            i += 1
            word.append(text[i])
            in_word = True
        elif ch == "$":
            raise ValueError(f"unescaped $ in {text!r}")
        else:
            word.append(ch)
            in_word = True
        i += 1
    assert quote is None, f"unterminated quote in {text!r}"
    if in_word:
        words.append("".join(word))
    return words


def labels(stage: dict) -> dict[str, str]:
    out = {}
    for instr, value in stage["instructions"]:
        if instr == "LABEL":
            for word in docker_words(value):
                key, _, val = word.partition("=")
                out[key] = val
    return out


def env_keys(stage: dict) -> dict[str, str]:
    out = {}
    for instr, value in stage["instructions"]:
        if instr == "ENV":
            for word in docker_words(value.replace("$PATH", "\\$PATH")):
                key, _, val = word.partition("=")
                out[key] = val
    return out


def check_structure(path: Path, answers: dict) -> None:
    parser = DockerfileParser(path=str(path), env_replace=False)
    all_stages = stages(parser)
    images = pinned_images(answers["python_version"])
    pkg = answers["package_name"]

    # Bases: uv's official image and the Python of python_version, as pinned;
    # with the private PostgreSQL backups, a stage that only yields the key of
    # PostgreSQL's apt repository.
    pg_client = (
        answers["database"] == "postgres"
        and answers.get("backups")
        and answers.get("backup_path") == "railway"
    )
    expected_bases = [images["uv"], images["python"], images["python"]]
    if pg_client:
        expected_bases.insert(2, images["python"])
    assert [s["from"] for s in all_stages] == expected_bases
    if pg_client:
        uv_stage, build, pgdg, runtime = all_stages
        check_postgres_client(pgdg, runtime)
    else:
        uv_stage, build, runtime = all_stages
        assert "postgresql" not in path.read_text(encoding="utf-8")
    assert uv_stage["name"] and build["name"] and runtime["name"]
    for stage in all_stages:
        tag = stage["from"].rsplit(":", 1)
        assert len(tag) == 2 and tag[1] not in ("latest", ""), f"unpinned base {stage['from']}"

    # Build stage, in order: uv binary, dependency layer from the lock alone,
    # then the sources and the project itself.
    steps = [(i, v) for i, v in build["instructions"] if i in ("COPY", "RUN")]
    assert steps[0] == ("COPY", f"--from={uv_stage['name']} /uv /usr/local/bin/uv")
    assert steps[1] == ("COPY", "pyproject.toml uv.lock ./")
    assert steps[2][0] == "RUN"
    assert shlex.split(steps[2][1]) == [
        "uv",
        "sync",
        "--locked",
        "--no-dev",
        "--no-install-project",
    ]
    later_copies = [v for i, v in steps[3:] if i == "COPY"]
    assert any(v.startswith("src ") for v in later_copies)
    last_run = shlex.split(steps[-1][1])
    assert steps[-1][0] == "RUN" and last_run[:4] == ["uv", "sync", "--locked", "--no-dev"]
    assert "--no-editable" in last_run  # the runtime stage gets no sources
    build_env = env_keys(build)
    assert build_env["UV_COMPILE_BYTECODE"] == "1"
    assert build_env["UV_PYTHON_DOWNLOADS"] == "never"

    # Runtime stage: only the environment from the build stage, non-root,
    # unbuffered, and Python itself as PID 1.
    copies = [v for i, v in runtime["instructions"] if i == "COPY"]
    venv = build_env["UV_PROJECT_ENVIRONMENT"]
    if pg_client:
        assert copies[0] == f"--from={pgdg['name']} {PGDG_KEY} /usr/share/keyrings/pgdg.asc"
        copies = copies[1:]
    assert copies == [f"--from={build['name']} {venv} {venv}"]
    run_env = env_keys(runtime)
    assert run_env["PYTHONUNBUFFERED"] == "1"
    assert run_env["PATH"].startswith(f"{venv}/bin:")
    users = [v for i, v in runtime["instructions"] if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    instructions = [i for i, _ in runtime["instructions"]]
    assert "ENTRYPOINT" not in instructions
    assert "VOLUME" not in instructions  # Railway rejects it
    cmd = [v for i, v in runtime["instructions"] if i == "CMD"]
    assert len(cmd) == 1
    assert json.loads(cmd[0]) == ["python", "-m", pkg], "CMD must be exec form, Python directly"

    # No secret baked into the image.
    for stage in all_stages:
        for instr, value in stage["instructions"]:
            if instr in ("ARG", "ENV"):
                names = [w.split("=")[0] for w in docker_words(value.replace("$PATH", "\\$PATH"))]
                assert not [n for n in names if SECRET_NAME.search(n)], (instr, value)

    # OCI labels carry the answers verbatim.
    assert labels(runtime) == {
        "org.opencontainers.image.title": answers["project_name"],
        "org.opencontainers.image.description": answers["description"],
        "org.opencontainers.image.authors": answers["author_name"],
        "org.opencontainers.image.source": f"https://github.com/{answers['github_repository']}",
    }


# Shipped by Debian's postgresql-common: the key arrives through Debian's
# signed archive instead of a download trusted on first use.
PGDG_KEY = "/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc"
PG_MAJOR = "18"  # Railway's PostgreSQL; pg_dump must be at least the server's major


def check_postgres_client(pgdg: dict, runtime: dict) -> None:
    """pg_dump/pg_restore 18 from apt.postgresql.org, signed-by its own key only."""
    pgdg_runs = [v for i, v in pgdg["instructions"] if i == "RUN"]
    assert len(pgdg_runs) == 1 and "postgresql-common" in shlex.split(pgdg_runs[0])
    assert [i for i, _ in pgdg["instructions"]] == ["RUN"], "the key stage only installs"
    runs = [v for i, v in runtime["instructions"] if i == "RUN"]
    client = [v for v in runs if "apt.postgresql.org" in v]
    assert len(client) == 1
    words = shlex.split(client[0].replace("\\\n", " "))
    source = words[words.index("echo") + 1]
    # One source line, for the image's own Debian release, trusting only
    # PGDG's key for it (never a key added to apt's global keyring).
    assert source == (
        "deb [signed-by=/usr/share/keyrings/pgdg.asc] "
        "https://apt.postgresql.org/pub/repos/apt trixie-pgdg main"
    )
    assert words[words.index(">") + 1] == "/etc/apt/sources.list.d/pgdg.list"
    install = words.index("install")
    assert words[install + 1 : install + 4] == [
        "-y",
        "--no-install-recommends",
        f"postgresql-client-{PG_MAJOR}",
    ]
    assert words[-3:] == ["rm", "-rf", "/var/lib/apt/lists/*"]
    # The versioned directory first, so `pg_dump` is the 18 one.
    assert f"/usr/lib/postgresql/{PG_MAJOR}/bin:" in env_keys(runtime)["PATH"]
    # Installed as root, before the image drops to the unprivileged user.
    order = [i for i, _ in runtime["instructions"]]
    assert order.index("USER") > max(
        n for n, (i, v) in enumerate(runtime["instructions"]) if i == "RUN" and v in client
    )


def hadolint(path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("combo", COMBOS, ids=[c.id for c in COMBOS])
def test_dockerfile_structure(rendered_matrix, combo):
    answers = answers_of(combo)
    check_structure(dockerfile_path(rendered_matrix.tree(combo), answers), answers)


def test_dockerfile_is_the_same_wherever_it_lives(rendered_matrix):
    """docker/Dockerfile (railpack, nixpacks) differs from the root one only in comments."""
    groups: dict[tuple, set[str]] = {}
    for combo in COMBOS:
        answers = answers_of(combo)
        text = dockerfile_path(rendered_matrix.tree(combo), answers).read_text(encoding="utf-8")
        code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        # The PostgreSQL client for private backups is the one other difference.
        pg_client = answers.get("backups") and answers.get("backup_path") == "railway"
        groups.setdefault((answers["database"], bool(pg_client)), set()).add(code)
    assert all(len(codes) == 1 for codes in groups.values()), {k: len(v) for k, v in groups.items()}


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory):
    dst = tmp_path_factory.mktemp("hostile")
    return matrix.render({**HOSTILE, "database": "sqlite", "builder": "railpack"}, dst)


def test_hostile_answers_stay_literal_in_labels(hostile_tree):
    answers = matrix.complete(
        {**matrix.REQUIRED_ANSWERS, **HOSTILE, "database": "sqlite", "builder": "railpack"}
    )
    path = hostile_tree / "docker" / "Dockerfile"
    check_structure(path, answers)
    hadolint(path)


def test_label_reader_follows_docker_rules():
    assert docker_words(r'a="x \"y\" \$z \\ `w` \n"') == ['a=x "y" $z \\ `w` \\n']
    with pytest.raises(ValueError):
        docker_words('a="$(id)"')


# ------------------------------------------------------------ .dockerignore --
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """moby/patternmatcher's translation of one pattern to a regular expression."""
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                    out += "(.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(ch)
            else:
                out += pattern[i : end + 1].replace("[!", "[^", 1)
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def read_dockerignore(path: Path) -> list[tuple[bool, re.Pattern[str], str]]:
    rules = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = os.path.normpath(line).replace(os.sep, "/")
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        rules.append((exclusion, _pattern_regex(line), line))
    return rules


def ignored(relpath: str, rules) -> bool:
    """MatchesOrParentMatches: the last matching rule wins; a rule matching a
    parent directory matches everything below it."""
    parts = PurePosixPath(relpath).parts
    parents = ["/".join(parts[: n + 1]) for n in range(len(parts) - 1)]
    matched = False
    for exclusion, regex, _ in rules:
        hit = bool(regex.match(relpath)) or any(regex.match(p) for p in parents)
        if hit:
            matched = not exclusion
    return matched


def build_context(tree: Path) -> set[str]:
    rules = read_dockerignore(tree / ".dockerignore")
    files = set()
    for path in tree.rglob("*"):
        if path.is_file():
            rel = path.relative_to(tree).as_posix()
            if not ignored(rel, rules):
                files.add(rel)
    return files


def test_ignore_matcher_follows_docker_rules(tmp_path):
    """Docker's documented .dockerignore examples."""
    (tmp_path / ".dockerignore").write_text(
        "*/temp*\n*/*/temp*\ntemp?\n**/*.go\n*.md\n!README*.md\n"
    )
    rules = read_dockerignore(tmp_path / ".dockerignore")
    assert ignored("somedir/temporary.txt", rules)
    assert ignored("somedir/temp", rules)
    assert ignored("somedir/subdir/temporary.txt", rules)
    assert ignored("tempa", rules) and not ignored("tempab", rules)
    assert ignored("a/b/c.go", rules) and ignored("c.go", rules)
    assert ignored("CHANGES.md", rules) and not ignored("README-secret.md", rules)
    assert not ignored("temp.txt", rules)  # */temp* needs a directory
    (tmp_path / ".dockerignore").write_text("data\n/build/\n")
    rules = read_dockerignore(tmp_path / ".dockerignore")
    assert ignored("data/x/y.sqlite3", rules) and ignored("build/lib/a.py", rules)
    assert not ignored("src/pkg/data/x.py", rules)


@pytest.mark.parametrize("combo", COMBOS, ids=[c.id for c in COMBOS])
def test_build_context_has_what_the_image_needs(rendered_matrix, combo, tmp_path):
    tree = rendered_matrix.tree(combo)
    answers = answers_of(combo)
    context = build_context(tree)
    parser = DockerfileParser(path=str(dockerfile_path(tree, answers)), env_replace=False)
    for stage in stages(parser):
        for instr, value in stage["instructions"]:
            if instr not in ("COPY", "ADD") or value.startswith("--from="):
                continue
            *sources, _dest = value.split()
            for source in sources:
                assert source in context or any(
                    f.startswith(source.rstrip("/") + "/") for f in context
                ), f"COPY source {source} is not in the build context"
    # Everything under src/ reaches the image: modules, migrations, data files.
    src_files = {p.relative_to(tree).as_posix() for p in (tree / "src").rglob("*") if p.is_file()}
    assert src_files <= context, sorted(src_files - context)
    # Every module the bot imports from itself is among them.
    pkg = answers["package_name"]
    for module in imported_modules(tree / "src", pkg):
        rel = module.replace(".", "/")
        assert f"src/{rel}.py" in context or f"src/{rel}/__init__.py" in context, module
    # Secrets and local state never do, wherever they appear.
    probe = tmp_path / "tree"
    shutil.copytree(tree, probe)
    planted = [
        ".env",
        ".env.local",
        ".env.production",
        "src/.env",
        ".git/config",
        "data/bot.sqlite3",
        "backups/dump.sql",
        "local.sqlite3",
        f"src/{pkg}/__pycache__/x.cpython-313.pyc",
        ".venv/bin/python",
        "tests/test_x.py",
        ".pytest_cache/v/x",
        "bot.log",
    ]
    for rel in planted:
        (probe / rel).parent.mkdir(parents=True, exist_ok=True)
        (probe / rel).write_text("planted\n")
    leaked = set(planted) & build_context(probe)
    assert not leaked, f"in the build context: {sorted(leaked)}"


def imported_modules(src: Path, pkg: str) -> set[str]:
    """Modules of the package imported anywhere in it (absolute or relative)."""
    found = {pkg}
    for path in (src / pkg).rglob("*.py"):
        module_parts = list(path.relative_to(src).with_suffix("").parts)
        if module_parts[-1] == "__init__":
            module_parts.pop()
        package_parts = module_parts if path.name == "__init__.py" else module_parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == pkg}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package_parts[: len(package_parts) - node.level + 1]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                if name.split(".")[0] != pkg:
                    continue
                found.add(name)
                for alias in node.names:  # `from . import x` may name a module
                    candidate = f"{name}.{alias.name}"
                    rel = candidate.replace(".", "/")
                    if (src / f"{rel}.py").exists() or (src / rel / "__init__.py").exists():
                        found.add(candidate)
    return found


# ------------------------------------------------------- install and run --
def python_for(version: str) -> str | None:
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}"))
    )
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version)"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return candidate
    return None


def _pairs() -> list[matrix.Combination]:
    """One combination per (database, redis): nothing else changes the package."""
    chosen: dict[tuple, matrix.Combination] = {}
    for combo in COMBOS:
        a = combo.answers
        if a["builder"] == "dockerfile":
            chosen.setdefault((a["database"], a["redis"]), combo)
    return list(chosen.values())


PAIRS = _pairs()


def replay_build_stage(
    tree: Path, answers: dict, root: Path, python: str
) -> tuple[Path, dict[str, str]]:
    """Run the build stage's WORKDIR/COPY/RUN in `root`; return the venv and the runtime ENV."""
    parser = DockerfileParser(path=str(dockerfile_path(tree, answers)), env_replace=False)
    # By name: the PostgreSQL client stage (pgdg) sits between them when backups run in Railway.
    named = {stage["name"]: stage for stage in stages(parser)}
    build, runtime = named["build"], named["runtime"]
    context = build_context(tree)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    cwd = root

    def host(path: str) -> Path:
        return root / path.lstrip("/") if path.startswith("/") else cwd / path

    for instr, value in build["instructions"]:
        if instr == "ENV":
            for key, val in env_keys({"instructions": [(instr, value)]}).items():
                env[key] = str(host(val)) if val.startswith("/") else val
        elif instr == "WORKDIR":
            cwd = host(value)
            cwd.mkdir(parents=True, exist_ok=True)
        elif instr == "COPY" and value.startswith("--from="):
            continue  # uv itself: the same pinned version runs on the host
        elif instr == "COPY":
            *sources, dest = value.split()
            target = host(dest)
            for source in sources:
                # Docker's COPY: a file lands in a directory destination (or
                # becomes the destination); a directory's contents are copied.
                if source in context:
                    multi = dest.endswith("/") or len(sources) > 1
                    pairs = [(source, target / Path(source).name if multi else target)]
                else:
                    prefix = source.rstrip("/") + "/"
                    pairs = [
                        (f, target / f[len(prefix) :]) for f in context if f.startswith(prefix)
                    ]
                assert pairs, f"COPY source {source} is not in the build context"
                for rel, out in pairs:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(tree / rel, out)
        elif instr == "RUN":
            argv = shlex.split(value)
            assert argv[:2] == ["uv", "sync"], f"unexpected build step: {value}"
            # The image's Python is the one matching python_version; the cache
            # only saves downloads (the image builds without one).
            run_env = {**env, "UV_PYTHON": python}
            run_env.pop("UV_NO_CACHE", None)
            result = subprocess.run(
                argv, cwd=cwd, env=run_env, capture_output=True, text=True, timeout=600, check=False
            )
            assert result.returncode == 0, f"{value}\n{result.stdout}\n{result.stderr}"
    venv = Path(env["UV_PROJECT_ENVIRONMENT"])
    runtime_env = env_keys(runtime)
    return venv, runtime_env


@pytest.fixture
def database_url(request):
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"crb_image_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN}: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "combo",
    PAIRS,
    ids=[f"{c.answers['database']}-{'redis' if c.answers['redis'] else 'no-redis'}" for c in PAIRS],
)
def test_image_install_runs_the_bot_check(rendered_matrix, combo, tmp_path, request):
    install_and_check(rendered_matrix.tree(combo), answers_of(combo), tmp_path, request)


@pytest.mark.slow
def test_image_install_on_the_other_python(tmp_path, request):
    """python_version=3.12: its own base image, the same kept lock."""
    other = {"python_version": "3.12", "database": "postgres", "redis": True}
    tree = matrix.render(other, tmp_path / "tree")
    answers = matrix.complete({**matrix.REQUIRED_ANSWERS, **other})
    check_structure(tree / "Dockerfile", answers)
    install_and_check(tree, answers, tmp_path, request)


def install_and_check(tree, answers, tmp_path, request) -> None:
    python = python_for(answers["python_version"])
    if python is None:
        pytest.skip(f"no Python {answers['python_version']} on this machine")
    if shutil.which("uv") is None:
        pytest.skip("uv is not installed")
    root = tmp_path / "image"
    venv, runtime_env = replay_build_stage(tree, answers, root, python)

    # The runtime stage copies the environment only: remove everything else.
    for child in root.iterdir():
        if child != venv.parent and not venv.is_relative_to(child):
            shutil.rmtree(child)
    workdir = root / "app"
    workdir.mkdir(exist_ok=True)
    assert not (workdir / "src").exists()
    pkg = answers["package_name"]

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update({k: v for k, v in runtime_env.items() if k != "PATH"})
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env["DISCORD_TOKEN"] = "not-a-real-token"
    if answers["database"] == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("database_url")
    if answers["database"] == "sqlite":
        # As on Railway: the volume's path, no DATABASE_URL.
        (root / "data").mkdir()
        env["RAILWAY_VOLUME_MOUNT_PATH"] = str(root / "data")
    if answers["redis"]:
        env["REDIS_URL"] = REDIS_URL
        redis = pytest.importorskip("redis")
        try:
            redis.Redis.from_url(REDIS_URL).ping()
        except redis.exceptions.ConnectionError as exc:
            pytest.skip(f"no Redis at {REDIS_URL}: {exc}")

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(venv / "bin" / "python"), *argv],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # Bytecode was compiled at install time.
    assert list((venv / "lib").glob(f"python*/site-packages/{pkg}/__pycache__/*.pyc"))
    # Every module of the installed package imports with the locked dependencies.
    imports = run(
        "-c",
        (
            "import importlib, pkgutil, sys\n"
            f"import {pkg}\n"
            f"assert '/site-packages/' in {pkg}.__file__, {pkg}.__file__\n"
            f"for m in pkgutil.walk_packages({pkg}.__path__, '{pkg}.'):\n"
            # __main__ runs the bot; Alembic's scripts only run under `migrate` below.
            "    if m.name.endswith('.__main__') or '.migrations' in m.name:\n"
            "        continue\n"
            "    importlib.import_module(m.name)\n"
        ),
    )
    assert imports.returncode == 0, imports.stderr
    if answers["database"] != "none":
        migrate = run("-m", pkg, "migrate")
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    check = run("-m", pkg, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    start_and_stop(answers, tree, venv, workdir, env)
    # And `check` does fail when a service is missing, so the pass above means something.
    if answers["database"] == "postgres":
        env["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/none"
        assert run("-m", pkg, "check").returncode != 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_and_stop(answers, tree, venv, workdir, env) -> None:
    """The image's CMD, run as PID 1 would run it: serves /health, handles SIGTERM in time.

    Discord is a local socket that never answers, so the bot never reaches
    the real API; what is checked is the process Railway manages.
    """
    parser = DockerfileParser(path=str(dockerfile_path(tree, answers)), env_replace=False)
    cmd = json.loads(next(v for i, v in stages(parser)[-1]["instructions"] if i == "CMD"))
    port = free_port()
    # A "Discord" that accepts connections and never answers: the bot stays
    # in its login, alive, without reaching the real API.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    discord_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    run_env = {**env, "PORT": str(port), "DISCORD_API_URL": discord_url}
    run_env["PATH"] = f"{venv / 'bin'}:{run_env['PATH']}"
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, status = time.monotonic() + 30, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    status = r.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(0.2)
                continue
            break
        # The bot installs its SIGTERM handler before its health server
        # listens: from the first answer on, SIGTERM means a clean shutdown.
        alive_before_sigterm = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = proc.wait(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
        silent.close()
    assert status is not None, f"no answer on /health:\n{output}"
    assert alive_before_sigterm, f"the bot exited before SIGTERM:\n{output}"
    # Railway's drainingSeconds leaves 20 s; the bot promises 10.
    assert elapsed < 10.5, f"{elapsed:.1f} s from SIGTERM to exit:\n{output}"
    # Handled, not killed by the signal's default action, and a clean exit.
    assert code != -signal.SIGTERM, f"killed by SIGTERM instead of shutting down:\n{output}"
    assert code == 0, f"exit status {code} after SIGTERM:\n{output}"
