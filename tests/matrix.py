"""Read copier.yml and turn it into the matrix the tests render.

Nothing here lists an option by hand: the structural questions are named
once (STRUCTURAL), and their choices, ``when:`` conditions, defaults and
validators all come from copier.yml itself, evaluated with the same Jinja
filters Copier uses. A new choice in copier.yml joins the matrix on its own.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment

ROOT = Path(__file__).resolve().parent.parent
COPIER_YML = ROOT / "copier.yml"

#: The questions whose every combination is rendered.
STRUCTURAL = (
    "runtime",
    "database",
    "redis",
    "builder",
    "railway_config",
    "deploy_mode",
    "staging",
    "template_updates",
    "backups",
    "backup_path",
)

#: Answers to the free-text questions that have no default.
REQUIRED_ANSWERS: dict[str, Any] = {"github_repository": "octocat/pingu-bot"}

#: What a copy of the working tree leaves out: git's data, local environments
#: and caches, none of which a user's clone of the template has.
NOT_THE_TEMPLATE = shutil.ignore_patterns(
    ".git", ".venv", ".tools", "__pycache__", "*.pyc", ".*_cache", "node_modules"
)


@cache
def questions() -> dict[str, dict[str, Any]]:
    """The questions of copier.yml, in order, without the ``_`` settings."""
    data = yaml.safe_load(COPIER_YML.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


@cache
def _jinja() -> SandboxedEnvironment:
    # Copier enables the Ansible filters (regex_search, to_nice_yaml, ...) by
    # default; validators and defaults use them.
    return SandboxedEnvironment(extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"])


@cache
def _compiled(text: str) -> Template:
    # copier.yml holds a few dozen distinct expressions, evaluated some 100,000
    # times while the matrix is enumerated: compiling each one once turns
    # collection from most of a minute of CPU into a second or two.
    return _jinja().from_string(text)


#: What copier.yml's ``_external_data`` reads on a first copy: no answers file yet.
FIRST_COPY = {"_external_data": {"recorded": {}}}


def render_expr(text: Any, context: dict[str, Any]) -> Any:
    """Render a copier.yml value the way Copier does when it is a string (a first copy)."""
    if not isinstance(text, str):
        return text
    return _compiled(text).render(**(FIRST_COPY | context))


def _cast(question: dict[str, Any], value: Any) -> Any:
    kind = question.get("type", "str")
    if kind == "bool" and isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "y", "1", "on"}
    return value


def choices(name: str) -> list[Any]:
    """Every value a structural question can take."""
    question = questions()[name]
    if question.get("type") == "bool":
        return [True, False]
    raw = question["choices"]
    values = list(raw.values()) if isinstance(raw, dict) else list(raw)
    return [v["value"] if isinstance(v, dict) else v for v in values]


def disabled_choices(name: str) -> list[Any]:
    """Choices that copier.yml refuses whatever the other answers are.

    They stay in copier.yml so that Copier can explain the refusal, and so
    that an existing project's stored answer is replaced on update.
    """
    context = complete(REQUIRED_ANSWERS)
    return [value for value in choices(name) if choice_error(name, {**context, name: value})]


def is_asked(name: str, answers: dict[str, Any]) -> bool:
    when = questions()[name].get("when", True)
    rendered = render_expr(when, answers)
    if isinstance(rendered, str):
        return rendered.strip().lower() not in {"", "false", "no", "0", "none"}
    return bool(rendered)


def default(name: str, answers: dict[str, Any]) -> Any:
    question = questions()[name]
    return _cast(question, render_expr(question.get("default"), answers))


def choice_error(name: str, answers: dict[str, Any]) -> str:
    """Why the answer to ``name`` is a disabled choice ('' if it is enabled).

    A choice written as ``label: {value: ..., validator: ...}`` is offered
    only while its validator renders empty; Copier refuses it otherwise, with
    the validator's text as the reason.
    """
    raw = questions()[name].get("choices")
    items = raw.values() if isinstance(raw, dict) else (raw or [])
    for item in items:
        if isinstance(item, dict) and item.get("value") == answers.get(name):
            return str(render_expr(item.get("validator", ""), answers)).strip()
    return ""


def validation_error(name: str, answers: dict[str, Any]) -> str:
    """The validator message of one question for these answers ('' if valid)."""
    if disabled := choice_error(name, answers):
        return disabled
    validator = questions()[name].get("validator")
    return render_expr(validator, answers).strip() if validator else ""


def complete(answers: dict[str, Any]) -> dict[str, Any]:
    """Fill every unanswered question the way ``copier copy --defaults`` would."""
    context = dict(answers)
    for name in questions():
        if name not in answers:
            context[name] = default(name, context)
    return context


def errors(answers: dict[str, Any]) -> list[str]:
    """Validator messages for a complete set of answers."""
    return [msg for name in questions() if (msg := validation_error(name, answers))]


@dataclass(frozen=True)
class Combination:
    """One point of the matrix: the structural answers passed to Copier."""

    data: tuple[tuple[str, Any], ...]

    @property
    def answers(self) -> dict[str, Any]:
        return dict(self.data)

    @property
    def id(self) -> str:
        parts = []
        for key, value in self.data:
            if isinstance(value, bool):
                parts.append(f"{key}" if value else f"no-{key}")
            else:
                parts.append(f"{value}")
        return "-".join(parts)


@cache
def _enumerate() -> tuple[list[Combination], list[tuple[dict[str, Any], list[str]]]]:
    valid: list[Combination] = []
    rejected: list[tuple[dict[str, Any], list[str]]] = []
    seen: set[tuple[tuple[str, Any], ...]] = set()
    # A disabled choice refuses every combination it is part of, for the same
    # reason: one refused combination per disabled choice proves it.
    disabled_seen: set[tuple[str, Any]] = set()
    for values in itertools.product(*(choices(n) for n in STRUCTURAL)):
        data = dict(zip(STRUCTURAL, values, strict=True))
        # A question that is not asked takes its default, whatever we passed:
        # drop it so each distinct combination is rendered exactly once.
        context = complete({**REQUIRED_ANSWERS, **data})
        key = tuple((n, data[n]) for n in STRUCTURAL if is_asked(n, context))
        if key in seen:
            continue
        seen.add(key)
        context = complete({**REQUIRED_ANSWERS, **dict(key)})
        if problems := errors(context):
            disabled = {(n, context[n]) for n in STRUCTURAL if choice_error(n, context)}
            if disabled and disabled <= disabled_seen:
                continue
            disabled_seen |= disabled
            rejected.append((dict(key), problems))
        else:
            valid.append(Combination(key))
    return valid, rejected


@cache
def combinations() -> tuple[Combination, ...]:
    """Every valid combination of the structural questions."""
    return tuple(_enumerate()[0])


@cache
def rejected_combinations() -> tuple[tuple[dict[str, Any], tuple[str, ...]], ...]:
    """Structural combinations that copier.yml's validators refuse."""
    return tuple((answers, tuple(msgs)) for answers, msgs in _enumerate()[1])


#: Where scratch_dir() creates its directories when set: the test run's
#: shared directory (tests/conftest.py), which the run removes at its end even
#: where a worker process exits without running its exit handlers.
scratch_root: Path | None = None


def scratch_dir(prefix: str) -> Path:
    """A new directory in memory when the machine has a tmpfs, else in /tmp.

    Rendering writes tens of thousands of small files; on tmpfs that costs
    half as much as on disk.
    """
    shm = Path("/dev/shm")
    where = scratch_root or (shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=where))


@cache
def template_copy() -> Path:
    """A copy of the template outside git, so Copier renders it in place.

    Rendering from the repository itself would make Copier clone it for every
    combination; a plain directory is read directly.
    """
    dst = scratch_dir("crb-template-") / "template"
    shutil.copytree(ROOT, dst, ignore=NOT_THE_TEMPLATE)
    # Gone with the process that made it (forked render workers leave through
    # os._exit and run no exit handlers, so they never remove their parent's).
    atexit.register(shutil.rmtree, dst.parent, ignore_errors=True)
    return dst


#: The answers the tiers that run a generated bot vary: its own suite, its
#: image and compose replays, its CI, docs and IaC checks. Every pair of
#: values of these appears together in at least one tier combination
#: (pairwise coverage); every other answer takes copier.yml's default there,
#: as for a user who picks only these. The render-and-lint matrix covers
#: every combination of everything.
TIER_SCOPE = ("runtime", "database", "redis", "backups", "backup_path")


def _asked(answers: dict[str, Any]) -> dict[str, Any]:
    """``answers`` restricted to the TIER_SCOPE questions copier.yml asks with them."""
    context = complete({**REQUIRED_ANSWERS, **answers})
    return {name: answers[name] for name in TIER_SCOPE if is_asked(name, context)}


def _scope_combinations() -> list[dict[str, Any]]:
    """Every distinct valid combination of TIER_SCOPE, richest choices first."""
    found: list[dict[str, Any]] = []
    for values in itertools.product(*(choices(name) for name in TIER_SCOPE)):
        answers = _asked(dict(zip(TIER_SCOPE, values, strict=True)))
        if answers not in found and not errors(complete({**REQUIRED_ANSWERS, **answers})):
            found.append(answers)
    return found


def value_pairs(answers: dict[str, Any]) -> set[tuple[tuple[str, Any], tuple[str, Any]]]:
    """The pairs of (question, value) one tier combination exercises together."""
    items = sorted(answers.items(), key=lambda item: TIER_SCOPE.index(item[0]))
    return set(itertools.combinations(items, 2))


def bot_code(answers: dict[str, Any]) -> tuple[str, str, bool]:
    """What decides which modules a generated bot has: runtime, database, private backups.

    The backup modules, their tests and the PostgreSQL client exist only for
    the private path, so each runtime's database runs with and without them.
    """
    return (answers["runtime"], answers["database"], private_backups(answers))


def _covers(answers: dict[str, Any]) -> set[Any]:
    return {*value_pairs(answers), ("bot code", *bot_code(answers))}


def _richness(answers: dict[str, Any]) -> tuple[int, ...]:
    """How far down each question's choices an answer is: 0 is copier.yml's first (richest)."""
    return tuple(
        choices(name).index(answers[name]) if name in answers else len(choices(name))
        for name in TIER_SCOPE[1:]
    )


@cache
def _covering_array() -> tuple[tuple[tuple[str, Any], ...], ...]:
    """A small set of combinations in which every valid pair of values appears.

    Besides every pair, each runtime runs each of its bot_code variants once.
    Greedy, deterministic: per runtime the richest and the plainest
    combination come first (tests that need one bot take them), then the
    combination that covers the most pairs not yet covered, until none is left.
    """
    candidates = _scope_combinations()
    wanted = set().union(*(_covers(c) for c in candidates))
    chosen: list[dict[str, Any]] = []
    for runtime in choices("runtime"):
        own = [c for c in candidates if c["runtime"] == runtime]
        chosen += [min(own, key=_richness), max(own, key=_richness)]
    covered = set().union(*(_covers(c) for c in chosen))
    while covered != wanted:
        best = max(candidates, key=lambda c: len(_covers(c) - covered))
        chosen.append(best)
        covered |= _covers(best)
    return tuple(tuple(c.items()) for c in chosen)


def tier_combinations(runtime: str) -> list[dict[str, Any]]:
    """The covering array's combinations for ``runtime``, from the plainest to the richest.

    Tests that need one bot take the first or the last. Products copier.yml
    refuses (backups with no database) are never chosen, as they would be
    refused for a user.
    """
    assert runtime in choices("runtime"), f"copier.yml does not offer runtime={runtime}"
    own = [dict(c) for c in _covering_array() if dict(c)["runtime"] == runtime]
    return sorted(own, key=_richness, reverse=True)


def lock_backend(answers: dict[str, Any]) -> str | None:
    """Where a bot's redeploy lease lives: PostgreSQL when it has it, else Redis, else nowhere."""
    if answers["database"] == "postgres":
        return "postgres"
    return "redis" if answers["redis"] else None


def runs_drills(answers: dict[str, Any]) -> bool:
    """Whether the template's suite runs this tier bot's redeploy drills.

    The drills (real bot processes under faults, the longest part of a bot's
    suite) differ only by runtime and lock backend, so they run once per
    pair, in the richest tier combination that has it; the other bots' suites
    skip them (`-m "not drill"`, or Node's skip pattern). An owner's own suite
    always runs them.
    """
    backend = lock_backend(answers)
    if backend is None:
        return False
    richest_first = reversed(tier_combinations(answers["runtime"]))
    return next(t for t in richest_first if lock_backend(t) == backend) == answers


#: What a Node bot's suite is told to skip where runs_drills() is false: the
#: describe block that holds its drills (tests/leader.test.ts).
NODE_DRILLS = "--test-skip-pattern=^drills: "


def tier_id(answers: dict[str, Any]) -> str:
    """A tier combination's test id: runtime-database-redis, then where backups run."""
    redis = "redis" if answers["redis"] else "no-redis"
    backups = f"-backups-{answers['backup_path']}" if answers.get("backups") else ""
    return f"{answers['runtime']}-{answers['database']}-{redis}{backups}"


def private_backups(answers: dict[str, Any]) -> bool:
    """Whether these answers (defaults for the rest) run the backups inside Railway.

    backup_path=railway: the bot's image carries the backup commands and the
    PostgreSQL client, and its settings the S3 and age variables.
    """
    context = complete({**REQUIRED_ANSWERS, **answers})
    return (
        context["database"] != "none"
        and bool(context["backups"])
        and context["backup_path"] == "railway"
    )


def quick_start() -> list[str]:
    """The command lines of README.md's quick start, as .ci/run reads them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README.md's quick start has no bash block"
    return block.group(1).strip().splitlines()


def render(answers: dict[str, Any], dst: Path, *, src: Path | None = None) -> Path:
    """Render the template in-process with these answers (defaults for the rest)."""
    import copier

    copier.run_copy(
        str(src or template_copy()),
        str(dst),
        data={**REQUIRED_ANSWERS, **answers},
        defaults=True,
        quiet=True,
        unsafe=False,
        overwrite=True,
    )
    return dst


def speed_up_copier() -> None:
    """Remove Copier's per-run overheads that say nothing about the template.

    Used by the matrix workers and the benchmark; every render still goes
    through ``copier.run_copy`` and real Jinja. Three process-wide changes:

    - git is hidden from Copier: the template copy and the destinations are
      plain directories, yet Copier asks git about every file it writes
      (to sync executable bits in a git index that does not exist), one
      subprocess per file;
    - Jinja compiles each distinct template source once per process instead
      of once per render (Copier builds a new environment per run, all with
      the same settings, so the compiled code is the same);
    - copier.yml is parsed once per process while it is unchanged;
    - the answers file path is rendered once per run when it holds no Jinja
      (Copier re-renders it for every file it writes).
    """
    import copy

    import copier._main
    import copier._template
    import jinja2
    import plumbum

    # Copier runs nothing but git in these workers (no tasks): an empty
    # search path hides it and makes each of Copier's lookups instant.
    plumbum.local.env["PATH"] = ""

    original_compile = jinja2.Environment.compile
    if getattr(original_compile, "memoized", False):
        return
    compiled: dict[tuple[Any, ...], Any] = {}

    def compile_once(self, source, name=None, filename=None, raw=False, defer_init=False):  # type: ignore[no-untyped-def]
        key = (type(self), tuple(sorted(self.extensions)), source, name, filename, raw, defer_init)
        if key not in compiled:
            compiled[key] = original_compile(self, source, name, filename, raw, defer_init)
        return compiled[key]

    compile_once.memoized = True  # type: ignore[attr-defined]
    jinja2.Environment.compile = compile_once  # type: ignore[method-assign]

    original_load = copier._template.load_template_config
    loaded: dict[tuple[str, int, bool], Any] = {}

    def load_once(conf_path: Path, quiet: bool = False) -> Any:
        key = (str(conf_path), conf_path.stat().st_mtime_ns, quiet)
        if key not in loaded:
            loaded[key] = original_load(conf_path, quiet)
        return copy.deepcopy(loaded[key])

    copier._template.load_template_config = load_once

    answers_relpath = copier._main.Worker.answers_relpath

    def answers_relpath_once(self: copier._main.Worker) -> Path:
        configured = str(self.answers_file or self.template.answers_relpath)
        if "{" in configured:
            return answers_relpath.fget(self)  # type: ignore[no-any-return]
        return Path(configured)

    copier._main.Worker.answers_relpath = property(answers_relpath_once)  # type: ignore[method-assign,assignment]


def rendered_templates(answers: dict[str, Any]) -> set[str]:
    """Relative paths of the output files that Copier renders from ``.jinja`` sources.

    Only those can hold leftover Jinja; other files are copied as they are
    and may contain braces of their own (Python f-strings, for instance).
    """
    context = complete({**REQUIRED_ANSWERS, **answers})
    context["_copier_conf"] = {"answers_file": ".copier-answers.yml"}
    root = ROOT / "template"
    paths = set()
    for source in root.rglob("*.jinja"):
        parts = [render_expr(part, context) for part in source.relative_to(root).parts]
        parts[-1] = parts[-1].removesuffix(".jinja")
        if all(parts):  # an empty part means Copier skips the file
            paths.add("/".join(parts))
    return paths


def _render_one(job: tuple[dict[str, Any], str, str]) -> tuple[str, str | None]:
    answers, dst, src = job
    try:
        render(answers, Path(dst), src=Path(src))
    except Exception as exc:  # reported per combination by the tests
        return dst, f"{type(exc).__name__}: {exc}"
    return dst, None


def render_all(
    jobs: dict[str, dict[str, Any]], root: Path, *, processes: int | None = None
) -> dict[str, Path | str]:
    """Render each named set of answers under ``root/<name>``, all cores used.

    Returns the rendered path for each name, or the error text when Copier
    refused or failed, so one broken combination does not hide the others.
    """
    import multiprocessing

    src = template_copy()
    work = [(answers, str(root / name), str(src)) for name, answers in jobs.items()]
    processes = processes or min(len(os.sched_getaffinity(0)), len(work)) or 1
    # fork keeps the already-imported copier and Jinja in every worker.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes, initializer=speed_up_copier) as pool:
        results = dict(pool.imap_unordered(_render_one, work, chunksize=4))
    return {
        name: (Path(dst) if (error := results[dst]) is None else error)
        for name, (_, dst, _) in zip(jobs, work, strict=True)
    }
