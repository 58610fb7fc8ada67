"""The Dockerfile of every combination, read as Docker reads it.

- structure: the rendered Dockerfile is parsed with dockerfile-parse and its
  instructions checked (pinned bases from includes/pins.jinja, uv copied
  from its image, dependency layer before the source, bytecode, non-root
  user, exec-form CMD that starts Python directly, no secret in ARG/ENV);
- labels: LABEL values are read back with Docker's double-quote rules, for
  hostile answers too, and must equal the answers byte for byte;
- build context: .dockerignore is applied to the rendered tree with Docker's
  matching rules (patternmatcher: `**`, `!` exceptions, parent directories),
  every COPY source must be in the context and every module of the bot too;
A Node.js bot (runtime=node) gets the same checks on every combination,
with its own expectations: npm ci from the manifest and lock before the
sources, npm run build, a deps stage with npm ci --omit=dev, and
`node dist/main.js` as CMD.

These are the checks of every one of the 960 renders. The images
themselves are built and booted for real in tests/test_images.py, once per
distinct Dockerfile.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path, PurePosixPath

import images
import pytest
from dockerfile_parse import DockerfileParser
from jinja2 import Environment, FileSystemLoader

import matrix
from conftest import tier_params

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hooks"))

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
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


def image_cmd(tree: Path, answers: dict) -> list[str]:
    parser = DockerfileParser(path=str(dockerfile_path(tree, answers)), env_replace=False)
    return json.loads(next(v for i, v in stages(parser)[-1]["instructions"] if i == "CMD"))


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
    entrypoints = [json.loads(v) for i, v in runtime["instructions"] if i == "ENTRYPOINT"]
    if answers["database"] == "sqlite":
        # Started as root (RAILWAY_RUN_UID=0 for the volume), the image still
        # runs the bot as its user: drop-privileges, exec form, then CMD.
        assert entrypoints == [[DROP_PRIVILEGES]]
    else:
        assert entrypoints == []
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
    if answers["database"] == "sqlite":
        assert copies[0] == f"scripts/drop-privileges.sh {DROP_PRIVILEGES}"
        copies = copies[1:]
    assert copies == [f"--from={build['name']} {venv} {venv}"]
    run_env = env_keys(runtime)
    assert run_env["PYTHONUNBUFFERED"] == "1"
    assert run_env["PATH"].startswith(f"{venv}/bin:")
    runs = [v for i, v in runtime["instructions"] if i == "RUN"]
    if answers["database"] == "sqlite":
        assert f"mkdir /data && chown bot:bot /data && chmod 0755 {DROP_PRIVILEGES}" in runs
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
    if answers["database"] == "sqlite":
        assert copies[0] == f"scripts/drop-privileges.sh {DROP_PRIVILEGES}"
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
        assert runs == [f"mkdir /data && chown node:node /data && chmod 0755 {DROP_PRIVILEGES}"]
    else:
        assert runs == []
    assert [v for i, v in runtime["instructions"] if i == "USER"] == [NODE_USER]
    return runtime


#: Where a SQLite image keeps scripts/drop-privileges.sh, its ENTRYPOINT.
DROP_PRIVILEGES = "/usr/local/bin/drop-privileges"

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
    installs = [n for n, word in enumerate(words) if word == "install"]
    assert words[installs[-1] + 1 : installs[-1] + 4] == [
        "-y",
        "--no-install-recommends",
        f"postgresql-client-{PG_MAJOR}",
    ]
    # An https source needs a CA bundle: a base without one (node's) gets
    # ca-certificates first, and nothing else comes before the source.
    for earlier in installs[:-1]:
        assert earlier < words.index("echo")
        assert words[earlier + 1 : earlier + 4] == [
            "-y",
            "--no-install-recommends",
            "ca-certificates",
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


#: Image names pinned by their tag alone, because no digest for them could be
#: read from a source that can be named (docs/design/pins.md, "Digests").
TAG_ONLY = {"ghcr.io/astral-sh/uv"}
#: The images of includes/pins.jinja that keep their tag alone, each for the
#: reason docs/design/pins.md gives.
TAG_ONLY_PINS = {"uv", "railway_cli", "railway_postgres", "railway_redis"}
BY_DIGEST = re.compile(r"[a-z0-9][a-z0-9./_-]*:[A-Za-z0-9][\w.-]*@sha256:[0-9a-f]{64}")
BY_TAG = re.compile(r"[a-z0-9][a-z0-9./_-]*:[A-Za-z0-9][\w.-]*")


def test_every_base_is_pinned_by_digest(rendered_matrix):
    """Each FROM and COPY --from image of every render is name:tag@sha256:<digest>.

    The tag stays beside the digest: Dependabot's docker ecosystem moves both,
    and a reader sees which release the digest is. tests/images.py drops the
    digest only to build on its local stand-ins (tests/test_images.py).
    """
    named: set[str] = set()
    for combo in COMBOS:
        named |= images.image_references(
            dockerfile_path(rendered_matrix.tree(combo), answers_of(combo))
        )
    assert named
    for reference in sorted(named):
        name = reference.split("@", 1)[0].rsplit(":", 1)[0]
        if name in TAG_ONLY:
            assert BY_TAG.fullmatch(reference), reference
        else:
            assert BY_DIGEST.fullmatch(reference), (
                f"{reference}: pin it as name:tag@sha256:<digest> in includes/pins.jinja"
            )


@pytest.mark.parametrize("python_version", matrix.choices("python_version"))
def test_pins_carry_a_digest_or_a_documented_reason(python_version):
    pins = pinned_images(str(python_version))
    design = (ROOT / "docs" / "design" / "pins.md").read_text(encoding="utf-8")
    for key, reference in pins.items():
        if key in TAG_ONLY_PINS:
            assert BY_TAG.fullmatch(reference), (key, reference)
            assert f"`images.{key}`" in design, (
                f"docs/design/pins.md must say why {key} has no digest"
            )
        else:
            assert BY_DIGEST.fullmatch(reference), (key, reference)


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


# ----------------------------------------------------------------- Node.js --
# The image replays for a Node bot, on matrix.tier_combinations("node").
NODE_PARAMS = tier_params("node")


def node_answers(wanted: dict) -> dict:
    return matrix.complete({**matrix.REQUIRED_ANSWERS, **wanted})


def test_node_hostile_answers_stay_literal_in_labels(tmp_path):
    wanted = {**matrix.tier_combinations("node")[0], **HOSTILE, "builder": "railpack"}
    tree = matrix.render(wanted, tmp_path / "project")
    path = tree / "docker" / "Dockerfile"
    check_structure(path, node_answers(wanted))
    hadolint(path)
