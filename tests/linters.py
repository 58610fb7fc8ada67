"""Lint rendered trees: every file by its ecosystem's own tool, each distinct file once.

Most combinations share most files, so trees are first reduced to distinct
files, keyed by relative path and content. Each linter then runs once over
the files it selects (split in one batch per core), in a real subprocess
with the same tool a generated repository's CI would use, and any finding
fails. The linters are listed once, in LINTERS; `PLAIN_TEXT` names the few
files no format-specific linter applies to, and a test checks that every
rendered file is claimed by one or the other.
"""

from __future__ import annotations

import atexit
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parent.parent
LINT_CONFIG = ROOT / "tests" / "lint"
BIN = Path(sys.executable).parent
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class DistinctFile:
    """One distinct rendered file: where it is relative to its tree, and one copy of it."""

    relpath: str
    path: Path
    combos: tuple[str, ...]


def distinct_files(trees: dict[str, Path]) -> list[DistinctFile]:
    """Reduce rendered trees to their distinct files (same path and same bytes)."""
    seen: dict[tuple[str, str], tuple[Path, list[str]]] = {}
    for name, tree in trees.items():
        for path in sorted(tree.rglob("*")):
            if not path.is_file():
                continue
            relpath = path.relative_to(tree).as_posix()
            digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
            entry = seen.setdefault((relpath, digest), (path, []))
            entry[1].append(name)
    return [DistinctFile(rel, path, tuple(combos)) for (rel, _), (path, combos) in seen.items()]


# --------------------------------------------------------------- selection --
def _name(relpath: str) -> str:
    return PurePosixPath(relpath).name


#: Decides whether a linter applies to a file, from its relative path and,
#: where the name says too little (a script without .sh), its content.
Selector = Callable[[str, Path | None], bool]


def _glob(*patterns: str) -> Selector:
    def matches(relpath: str, path: Path | None = None) -> bool:
        name = _name(relpath)
        return any(
            fnmatch.fnmatchcase(relpath, p) or ("/" not in p and fnmatch.fnmatchcase(name, p))
            for p in patterns
        )

    return matches


is_python = _glob("*.py")
is_yaml = _glob("*.yml", "*.yaml")
is_workflow = _glob(".github/workflows/*.yml", ".github/workflows/*.yaml")
is_dependabot = _glob(".github/dependabot.yml")
is_renovate = _glob("renovate.json", ".github/renovate.json")
is_compose = _glob("compose.yaml", "compose.yml", "docker-compose.yml", "compose.*.yaml")
is_dockerfile = _glob("Dockerfile", "*.Dockerfile", "Dockerfile.*")
is_toml = _glob("*.toml", "uv.lock")
is_taplo_toml = _glob("*.toml")
is_json = _glob("*.json")
is_railpack = _glob("railpack.json")
is_dotenv = _glob(".env.example", ".env.*.example")
is_markdown = _glob("*.md")
is_typescript = _glob("*.ts", "*.js")
#: A Node bot's JSON, which npm writes and Prettier formats, and the backup MAC
#: vectors both runtimes' tests read (one file, includes/backups/mac-vectors.json).
is_node_json = _glob(
    "package.json",
    "package-lock.json",
    "tsconfig*.json",
    ".prettierrc.json",
    "tests/backup-mac-vectors.json",
)
SHELL_SHEBANG = re.compile(rb"^#!\s*(/usr/bin/env\s+)?(/bin/|/usr/bin/)?(ba|da|k)?sh\b")


def is_shell(relpath: str, path: Path | None = None) -> bool:
    if _glob("*.sh", "*.bash")(relpath):
        return True
    if path is None or "." in _name(relpath):
        return False
    with path.open("rb") as fh:
        return bool(SHELL_SHEBANG.match(fh.readline()))


#: Files no format-specific linter exists for: they still get the
#: whitespace check, and nothing else may go unlinted.
PLAIN_TEXT = _glob(
    ".gitignore",
    ".dockerignore",
    ".editorconfig",
    ".python-version",
    ".nvmrc",
    "py.typed",
    "*.mako",
    "*.ini",
    "*.txt",
    "*.lock.txt",
    "LICENSE",
    # uv's own format, written by uv: tomllib parses it here, and
    # tests/test_generated_python.py checks it against pyproject with `uv lock --check`.
    "uv.lock",
)


# ------------------------------------------------------------------ checks --
def _run(argv: list[str], files: list[Path], env: dict[str, str] | None = None) -> list[str]:
    """Run a linter over files; any output with a non-zero exit is a finding."""
    proc = subprocess.run(
        [*argv, *map(str, files)],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})},
        check=False,
    )
    if proc.returncode == 0:
        return []
    return [f"{argv[0]} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}".strip()]


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def _parse_each(
    parse: Callable[[Path], object], errors: type[Exception] | tuple[type[Exception], ...]
) -> Callable[[list[Path]], list[str]]:
    """A check that reports every file the parser rejects, with the parser's message."""

    def check(files: list[Path]) -> list[str]:
        problems = []
        for path in files:
            try:
                parse(path)
            except errors as exc:
                problems.append(f"{path}: {exc}")
        return problems

    return check


check_python_compiles = _parse_each(
    lambda path: compile(path.read_bytes(), str(path), "exec", dont_inherit=True), SyntaxError
)
check_toml_parses = _parse_each(
    lambda path: tomllib.loads(path.read_text(encoding="utf-8")), tomllib.TOMLDecodeError
)
check_json_parses = _parse_each(
    lambda path: json.loads(path.read_text(encoding="utf-8")), json.JSONDecodeError
)
check_yaml_parses = _parse_each(
    lambda path: list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=SafeLoader)),
    yaml.YAMLError,
)


RAILPACK_KEYS = {
    "$schema",
    "provider",
    "buildAptPackages",
    "packages",
    "caches",
    "secrets",
    "steps",
    "deploy",
}


def check_railpack_config(files: list[Path]) -> list[str]:
    """railpack.json against Railpack's documented top-level keys.

    Railpack publishes its schema only online, so this checks what the
    builder reads: known keys, the schema URL, version strings for packages
    and a string start command.
    """
    problems = []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or set(data) - RAILPACK_KEYS:
            problems.append(f"{path}: unknown keys {sorted(set(data) - RAILPACK_KEYS)}")
        elif data.get("$schema") != "https://schema.railpack.com":
            problems.append(f"{path}: $schema must be https://schema.railpack.com")
        elif not all(isinstance(v, str) for v in data.get("packages", {}).values()):
            problems.append(f"{path}: packages must map names to version strings")
        elif not isinstance(data.get("deploy", {}).get("startCommand", ""), str):
            problems.append(f"{path}: deploy.startCommand must be a string")
    return problems


def check_whitespace(files: list[Path]) -> list[str]:
    """What template logic leaves behind: stray blank lines and trailing spaces."""
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        where = str(path)
        if not text:
            continue  # marker files such as py.typed are empty by design
        if not text.endswith("\n") or text.endswith("\n\n"):
            problems.append(f"{where}: must end with exactly one newline")
        if text.startswith("\n"):
            problems.append(f"{where}: starts with a blank line")
        allowed_blank = 2 if path.suffix == ".py" else 1
        blank_run = 0
        fenced = False  # in a Markdown code block: the code's own rule (PEP 8's two)
        for number, line in enumerate(text.split("\n")[:-1], start=1):
            if line != line.rstrip():
                problems.append(f"{where}:{number}: trailing whitespace")
            if path.suffix == ".md" and line.startswith("```"):
                fenced = not fenced
            blank_run = blank_run + 1 if not line.strip() else 0
            if blank_run > (2 if fenced else allowed_blank):
                problems.append(
                    f"{where}:{number}: more than {allowed_blank} blank line(s) in a row"
                )
            if "\t" in line and path.name != "Makefile":
                problems.append(f"{where}:{number}: tab character")
    return problems


# -------------------------------------------------------------- TypeScript --
#: Installs one Node bot at a time: every check of the run shares it.
_NODE_PROJECT_LOCK = threading.Lock()
_node_project: list[Path] = []


def _node_tools() -> ModuleType:
    """hooks/refresh_node_locks.py: the pinned node and npm, and npm's environment."""
    hooks = str(ROOT / "hooks")
    if hooks not in sys.path:
        sys.path.insert(0, hooks)
    import refresh_node_locks

    return refresh_node_locks


def installed_node_project() -> Path:
    """A Node bot with every package a combination can add, installed by `npm ci`; once per process.

    The richest Node combination (PostgreSQL, Redis, private backups, the IaC
    file) holds every dependency any other combination has, at the same
    pinned versions: the TypeScript checks borrow its node_modules, so each
    distinct file is checked with the types it is written against.
    """
    with _NODE_PROJECT_LOCK:
        if not _node_project:
            import matrix

            refresh_node_locks = _node_tools()

            dst = matrix.scratch_dir("crb-node-lint-") / "project"
            # Gone with this process (the test run also removes its scratch root).
            atexit.register(shutil.rmtree, dst.parent, ignore_errors=True)
            matrix.render(matrix.tier_combinations("node")[-1], dst)
            subprocess.run(
                refresh_node_locks.npm("ci", "--ignore-scripts", "--no-audit"),
                cwd=dst,
                env=refresh_node_locks.npm_env(),
                capture_output=True,
                check=True,
            )
            _node_project.append(dst)
        return _node_project[0]


def _node_checks(work: Path, projects: list[str], relpaths: list[str]) -> list[str]:
    """tsc (strict, each project's own tsconfig), eslint (typed rules) and Prettier in ``work``.

    ``work`` holds several projects side by side above one node_modules. One
    process of each tool checks all of them, each file under its own
    project's configuration (tsc's build mode takes each tsconfig.json;
    eslint and Prettier find each file's config from its folder), and the
    type declarations of discord.js and Node are read once instead of once
    per project.
    """
    tools = _node_tools()
    node = str(tools.node_bin() / "node")
    env = tools.npm_env()
    problems = []
    for tool, argv in (
        ("tsc", ["node_modules/typescript/bin/tsc", "--build", *projects, "--pretty", "false"]),
        ("eslint", ["node_modules/eslint/bin/eslint.js", "--max-warnings=0", *relpaths]),
        ("prettier", ["node_modules/prettier/bin/prettier.cjs", "--check", *relpaths]),
    ):
        proc = subprocess.run(
            [node, *argv], cwd=work, capture_output=True, text=True, env=env, check=False
        )
        if proc.returncode != 0:
            output = f"{proc.stdout}{proc.stderr}".strip()
            problems.append(f"{tool} exited {proc.returncode}:\n{output}")
    return problems


def _project_root(path: Path) -> Path | None:
    for parent in path.parents:
        if (parent / "package.json").is_file():
            return parent
    return None


def _lone_files_project(dst: Path, files: list[Path]) -> tuple[list[str], list[str]]:
    """Files that import no module of their own, each in a folder of one project at ``dst``.

    Every variant of .railway/railway.ts (it changes with almost every answer)
    is checked there, instead of in one tree per combination.
    """
    project = installed_node_project()
    dst.mkdir()
    for name in ("package.json", "eslint.config.js", ".prettierrc.json"):
        shutil.copyfile(project / name, dst / name)
    tsconfig = json.loads((project / "tsconfig.json").read_text(encoding="utf-8"))
    tsconfig["include"] = ["files"]
    (dst / "tsconfig.json").write_text(json.dumps(tsconfig), encoding="utf-8")
    relpaths, sources = [], []
    for number, path in enumerate(files):
        relpath = f"files/{number}/{path.name}"
        (dst / relpath).parent.mkdir(parents=True)
        shutil.copyfile(path, dst / relpath)
        relpaths.append(relpath)
        sources.append(f"{dst.name}/{relpath}: {path}")
    return relpaths, sources


def _check_projects(jobs: list[tuple[Path | None, list[str] | list[Path]]]) -> list[str]:
    """Check a share of the projects in one workspace: (tree, relpaths) or (None, lone files)."""
    project = installed_node_project()
    with tempfile.TemporaryDirectory(prefix="crb-ts-") as tmp:
        work = Path(tmp)
        (work / "node_modules").symlink_to(project / "node_modules")
        projects, relpaths, legend = [], [], []
        for number, (root, selected) in enumerate(jobs):
            name = f"p{number}"
            if root is None:
                lone, sources = _lone_files_project(work / name, [Path(p) for p in selected])
                relpaths += [f"{name}/{relpath}" for relpath in lone]
                legend += sources
            else:
                # A copy of the tree that rendered the files, beside the
                # modules they import; tsc checks the whole tree once.
                ignore = shutil.ignore_patterns("node_modules", "dist")
                shutil.copytree(root, work / name, ignore=ignore)
                relpaths += [f"{name}/{relpath}" for relpath in selected]
                legend.append(f"{name}: {root}")
            projects.append(name)
        problems = _node_checks(work, projects, relpaths)
        return [f"{problem}\n" + "\n".join(legend) for problem in problems]


def check_typescript(files: list[Path]) -> list[str]:
    """Each distinct TypeScript or JavaScript file through what the bot's CI runs on it.

    A file is checked in a copy of a tree that rendered it (tsc type-checks
    it with the modules it imports), so each tree is checked once for all
    of its distinct files; .railway/railway.ts imports nothing of the bot and
    is checked alone. A file outside any project (the harness's own samples)
    is checked alone too. The projects are shared out over the cores.
    """
    in_tree: dict[Path, list[str]] = defaultdict(list)
    alone: list[Path] = []
    for path in files:
        root = _project_root(path)
        if root is None or path.relative_to(root).as_posix() == ".railway/railway.ts":
            alone.append(path)
        else:
            in_tree[root].append(path.relative_to(root).as_posix())
    jobs: list[tuple[Path | None, list[str] | list[Path]]] = list(in_tree.items())
    if alone:
        jobs.append((None, alone))

    def cost(job: tuple[Path | None, list[str] | list[Path]]) -> float:
        # A tree costs about as much as fifty lone files (measured: 5.6 s
        # against 19 s for 120 railway.ts).
        return 1.0 if job[0] else len(job[1]) / 50

    # Shared out by their cost, largest first, each to the lightest share.
    cores = len(os.sched_getaffinity(0))
    shares: list[list[tuple[Path | None, list[str] | list[Path]]]] = [[] for _ in range(cores)]
    loads = [0.0] * cores
    for job in sorted(jobs, key=cost, reverse=True):
        lightest = loads.index(min(loads))
        shares[lightest].append(job)
        loads[lightest] += cost(job)
    shares = [share for share in shares if share]
    with ThreadPoolExecutor(max_workers=cores) as pool:
        results = [pool.submit(_check_projects, share) for share in shares]
        return [problem for result in results for problem in result.result()]


def check_node_json(files: list[Path]) -> list[str]:
    """Prettier (the bot's pinned one) finds nothing to change in the Node bot's JSON."""
    project = installed_node_project()
    prettier = project / "node_modules" / "prettier" / "bin" / "prettier.cjs"
    tools = _node_tools()
    return _run([str(tools.node_bin() / "node"), str(prettier), "--check"], files, tools.npm_env())


@dataclass(frozen=True)
class Linter:
    """One tool applied to one kind of file."""

    name: str
    selects: Selector
    argv: tuple[str, ...] = ()
    check: Callable[[list[Path]], list[str]] | None = None
    #: False when the check spreads its own work over the cores and must see
    #: every file at once (a tree is type-checked once for all its files).
    split: bool = True

    def run(self, files: list[Path]) -> list[str]:
        if self.check is not None:
            return self.check(files)
        return _run([_tool(self.argv[0]), *self.argv[1:]], files)


def _text_file(relpath: str, path: Path | None = None) -> bool:
    return True


LINTERS: tuple[Linter, ...] = (
    Linter("ruff-check", is_python, ("ruff", "check", "--no-cache", "--quiet")),
    Linter("ruff-format", is_python, ("ruff", "format", "--check", "--no-cache", "--quiet")),
    Linter("python-compile", is_python, check=check_python_compiles),
    Linter(
        "yamllint",
        is_yaml,
        ("yamllint", "--strict", "-f", "parsable", "-c", str(LINT_CONFIG / "yamllint.yml")),
    ),
    Linter("yaml-parse", is_yaml, check=check_yaml_parses),
    Linter("actionlint", is_workflow, ("actionlint", "-no-color", "-oneline")),
    Linter("zizmor", is_workflow, ("zizmor", "--offline", "--no-progress", "--format", "plain")),
    # The auditor persona reports what the regular one leaves out as likely
    # false positives; at medium and above the rendered workflows have none
    # but the ones docs/design/ci-cd.md explains (and ignores inline).
    Linter(
        "zizmor-auditor",
        is_workflow,
        (
            "zizmor",
            "--offline",
            "--no-progress",
            "--format",
            "plain",
            "--persona",
            "auditor",
            "--min-severity",
            "medium",
        ),
    ),
    Linter(
        "workflow-schema",
        is_workflow,
        ("check-jsonschema", "--builtin-schema", "vendor.github-workflows"),
    ),
    Linter(
        "dependabot-schema",
        is_dependabot,
        ("check-jsonschema", "--builtin-schema", "vendor.dependabot"),
    ),
    Linter(
        "compose-schema",
        is_compose,
        ("check-jsonschema", "--builtin-schema", "vendor.compose-spec"),
    ),
    Linter("hadolint", is_dockerfile, ("hadolint", "--no-color", "--failure-threshold", "style")),
    Linter("shellcheck", is_shell, ("shellcheck", "--format", "gcc")),
    Linter("taplo-lint", is_taplo_toml, ("taplo", "lint", "--no-schema")),
    Linter("taplo-format", is_taplo_toml, ("taplo", "fmt", "--check")),
    Linter("toml-parse", is_toml, check=check_toml_parses),
    Linter("json-parse", is_json, check=check_json_parses),
    Linter("railpack-config", is_railpack, check=check_railpack_config),
    Linter("dotenv-linter", is_dotenv, ("dotenv-linter", "lint")),
    Linter(
        "markdown", is_markdown, ("rumdl", "check", "--config", str(LINT_CONFIG / "rumdl.toml"))
    ),
    Linter("typescript", is_typescript, check=check_typescript, split=False),
    Linter("prettier-json", is_node_json, check=check_node_json),
    Linter("whitespace", _text_file, check=check_whitespace),
)

#: Linters that only confirm a file parses; they do not count as linting it.
PARSE_ONLY = {"python-compile", "yaml-parse", "toml-parse", "json-parse", "whitespace"}


def files_for(linter: Linter, files: Iterable[DistinctFile]) -> list[DistinctFile]:
    return [f for f in files if linter.selects(f.relpath, f.path)]


def unlinted(files: Iterable[DistinctFile]) -> list[str]:
    """Relative paths that no format-specific linter claims and that are not plain text."""
    missing = set()
    for f in files:
        claimed = any(
            linter.name not in PARSE_ONLY and files_for(linter, [f]) for linter in LINTERS
        )
        if not claimed and not PLAIN_TEXT(f.relpath):
            missing.add(f.relpath)
    return sorted(missing)


def lint_all(
    files: list[DistinctFile], *, jobs: int | None = None
) -> dict[str, tuple[int, list[str]]]:
    """Run every linter over the files it selects: {linter: (files linted, findings)}."""
    jobs = jobs or len(os.sched_getaffinity(0))
    work: list[tuple[Linter, list[Path]]] = []
    counts: dict[str, int] = {}
    for linter in LINTERS:
        selected = [f.path for f in files_for(linter, files)]
        counts[linter.name] = len(selected)
        # Split big batches so both cores stay busy on slow linters.
        size = max(1, -(-len(selected) // (jobs if linter.split else 1)))
        work += [(linter, selected[i : i + size]) for i in range(0, len(selected), size)]
    # The linters that spread over the cores themselves are the longest:
    # started first, the others fill the cores around them.
    work.sort(key=lambda item: item[0].split)
    results: dict[str, list[str]] = {linter.name: [] for linter in LINTERS}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [(linter.name, pool.submit(linter.run, batch)) for linter, batch in work]
        for name, future in futures:
            results[name] += future.result()
    return {name: (counts[name], results[name]) for name in results}
