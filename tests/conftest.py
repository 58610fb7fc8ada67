"""Shared fixtures: the whole matrix rendered and linted once per test run.

The suite runs on pytest-xdist workers (pyproject.toml's ``addopts``), and a
session fixture runs once per worker. Rendering and linting the matrix is the
costliest setup of the suite and its result is the same for every worker, so
it happens once per run, in a directory all workers share:

- the controlling process creates that directory before any worker starts,
  hands its path to each worker, and removes it only after every worker has
  exited, so no worker ever loses a tree it is reading;
- the first worker that needs the matrix renders (or lints) it while holding
  a file lock; the others wait on the lock, then read what it recorded.

Without xdist (``-p no:xdist`` or ``-n 0``) the one process plays both parts.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import linters
import matrix

# The linters live next to the interpreter running the tests; rendered
# projects' hooks and actionlint's shellcheck integration look them up on PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

#: Key of the run's shared directory in each worker's ``workerinput``.
SHARED = "crb_shared_dir"

#: Where the controller keeps the run's shared directory.
_shared_key = pytest.StashKey[Path]()

#: The services the generated bots' suites use: a PostgreSQL server where they
#: may create databases, and a Redis database (15, so a developer's data in 0
#: is safe). CRB_ variables point them elsewhere.
TEST_DATABASE_URL = os.environ.get(
    "CRB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TEST_REDIS_URL = os.environ.get("CRB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        # The controller (or the only process): it outlives every worker.
        config.stash[_shared_key] = matrix.scratch_dir("crb-run-")
    # Every scratch directory of the run (the template copy of each worker,
    # for one) goes inside it, so the run leaves nothing behind.
    matrix.scratch_root = shared_dir(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: tell each worker where the run's shared directory is."""
    node.workerinput[SHARED] = str(node.config.stash[_shared_key])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Each image the run built: built, booted, and the steps that could not run here."""
    if hasattr(config, "workerinput") or _shared_key not in config.stash:
        return
    folder = config.stash[_shared_key] / "images"
    if not folder.is_dir():
        return
    from test_images import summary_lines

    terminalreporter.section("images built and booted")
    for line in summary_lines(folder):
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    # Only the controller removes it, once all workers are gone.
    if not hasattr(config, "workerinput") and _shared_key in config.stash:
        shutil.rmtree(config.stash[_shared_key], ignore_errors=True)


def shared_dir(config: pytest.Config) -> Path:
    """The directory every worker of this run sees, created by the controller."""
    workerinput = getattr(config, "workerinput", None)
    return Path(workerinput[SHARED]) if workerinput else config.stash[_shared_key]


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if needed), across processes."""
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lower_priority() -> None:
    """For a subprocess that nothing times: let the timed ones have the CPU first."""
    os.nice(10)


def run_tool(
    command: list[str], project: Path, env: dict[str, str], *, timeout: int, timed: bool = False
) -> str:
    """Run one tool of a generated project; on failure the test shows all it printed.

    Installs, linters and type checkers run at a lower CPU priority: the
    bots' own suites (``timed=True``) time real processes against bounds,
    and go first on a busy machine.
    """
    shown = " ".join(command)
    try:
        result = subprocess.run(
            command,
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            preexec_fn=None if timed else lower_priority,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{shown}` ran longer than {timeout} s in {project}\n{exc.output}")
    if result.returncode != 0:
        pytest.fail(
            f"`{shown}` exited {result.returncode} in {project}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout


def once_per_run(config: pytest.Config, name: str, compute: Callable[[], T]) -> T:
    """``compute()``'s JSON-able result, computed by the first worker that asks.

    The others block on the lock until it is recorded, then read it. A failed
    computation records nothing: the next worker tries again and fails the same
    way, so each worker reports the error in its own tests.
    """
    shared = shared_dir(config)
    result = shared / f"{name}.json"
    with exclusive(shared / f"{name}.lock"):
        if not result.exists():
            partial = result.with_suffix(".partial")
            partial.write_text(json.dumps(compute()), encoding="utf-8")
            partial.replace(result)
        # Read back by every worker alike, the one that computed it included.
        return json.loads(result.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@dataclass
class RenderedMatrix:
    """Every valid combination rendered: its tree, or the error Copier raised."""

    trees: dict[str, Path]
    errors: dict[str, str]

    def tree(self, combo: matrix.Combination) -> Path:
        if combo.id in self.errors:
            pytest.fail(f"{combo.id} did not render: {self.errors[combo.id]}")
        return self.trees[combo.id]


@pytest.fixture(scope="session")
def rendered_matrix(pytestconfig: pytest.Config) -> RenderedMatrix:
    root = shared_dir(pytestconfig) / "matrix"

    def render() -> dict[str, str | None]:
        # A retry after a failed render starts from an empty directory.
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        jobs = {combo.id: combo.answers for combo in matrix.combinations()}
        results = matrix.render_all(jobs, root)
        return {k: None if isinstance(v, Path) else v for k, v in results.items()}

    results = once_per_run(pytestconfig, "matrix", render)
    return RenderedMatrix(
        trees={k: root / k for k, error in results.items() if error is None},
        errors={k: error for k, error in results.items() if error is not None},
    )


@pytest.fixture(scope="session")
def matrix_files(
    pytestconfig: pytest.Config, rendered_matrix: RenderedMatrix
) -> list[linters.DistinctFile]:
    def distinct() -> list[list[Any]]:
        return [
            [f.relpath, str(f.path), list(f.combos)]
            for f in linters.distinct_files(rendered_matrix.trees)
        ]

    return [
        linters.DistinctFile(relpath, Path(path), tuple(combos))
        for relpath, path, combos in once_per_run(pytestconfig, "matrix-files", distinct)
    ]


@pytest.fixture(scope="session")
def matrix_lint(
    pytestconfig: pytest.Config, matrix_files: list[linters.DistinctFile]
) -> dict[str, tuple[int, list[str]]]:
    def lint() -> dict[str, tuple[int, list[str]]]:
        return linters.lint_all(matrix_files)

    recorded = once_per_run(pytestconfig, "matrix-lint", lint)
    return {name: (count, findings) for name, (count, findings) in recorded.items()}


@pytest.fixture(scope="session")
def mypy_cache(pytestconfig: pytest.Config) -> Path:
    """One mypy cache for every generated project of the run, on every worker.

    A cold mypy spends about ten seconds of CPU analysing discord.py, SQLAlchemy
    and the rest for each project; with the cache it checks them in under a
    second. mypy's incremental mode gives the same verdict warm or cold: a
    module whose source, options or dependencies changed is analysed again.
    """
    return shared_dir(pytestconfig) / "mypy-cache"


@pytest.fixture(scope="session")
def bot_suite_lock(pytestconfig: pytest.Config) -> Path:
    """Held while a generated bot's own suite runs: one at a time in the whole run.

    A bot's suite runs workers of its own, and its fault drills time real
    processes: two at once on two cores push takeovers past their bounds.
    """
    return shared_dir(pytestconfig) / "bot-suite.lock"


@pytest.fixture(scope="session")
def tree_for(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], Path]:
    """Render a combination (copier.yml's defaults for the rest), once per worker, on first use."""
    trees: dict[str, Path] = {}

    def tree(wanted: dict[str, Any]) -> Path:
        key = json.dumps(wanted, sort_keys=True)
        if key not in trees:
            dst = tmp_path_factory.mktemp("tree") / "project"
            trees[key] = matrix.render(wanted, dst)
        return trees[key]

    return tree


#: The long tests, in chains: each chain runs in order on one xdist worker,
#: from the first minute of the run. A chain's tests take turns on a lock
#: anyway (the bots' suites on bot_suite_lock, builds on the image build
#: lock), so running them on one worker each keeps every other worker free
#: for the short tests instead of parking workers on a lock. Each runtime's
#: bots are a chain, so one chain installs and lints (at a lower priority)
#: while the other's suite runs; images are two chains: one builds while the
#: other boots.
CHAINS = ("python-bots", "node-bots", "updates", "images-1", "images-2")

#: Short tests go to the workers in runs of this many (one scheduling unit
#: each): few enough units for xdist's scheduler, small enough to balance.
QUICK_RUN = 150

#: Where each worker records the unit of every test, for the scheduler.
UNITS = "units.json"


def chain_of(item: pytest.Item, images_seen: int) -> str | None:
    """The chain a long test belongs to, or None for a test any worker may take."""
    if item.get_closest_marker("image"):
        return CHAINS[3 + images_seen % 2]
    if item.get_closest_marker("bot_suite"):
        return {
            "test_generated_python.py": "python-bots",
            "test_generated_node.py": "node-bots",
        }.get(item.path.name, "updates")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Chains first, then the other slow tests one by one, then the short tests in runs.

    Each test's scheduling unit (its chain, itself, or its run of short
    tests) goes to the run's shared directory, where ChainScheduling reads
    it. Within the bots' chain the tests that run the most toolchains come
    first; otherwise order is collection order.
    """

    def runs(item: pytest.Item) -> int:
        marker = item.get_closest_marker("bot_suite")
        return marker.kwargs.get("runs", 1) if marker else 1

    chained: dict[str, list[pytest.Item]] = {name: [] for name in CHAINS}
    slow, quick = [], []
    units: dict[str, str] = {}
    for item in items:
        chain = chain_of(item, sum(len(chained[c]) for c in CHAINS[3:]))
        if chain is not None:
            chained[chain].append(item)
            units[item.nodeid] = chain
        elif item.get_closest_marker("slow"):
            slow.append(item)
        else:
            units[item.nodeid] = f"quick-{len(quick) // QUICK_RUN}"
            quick.append(item)
    ordered = [i for name in CHAINS for i in sorted(chained[name], key=lambda i: -runs(i))]
    items[:] = ordered + slow + quick
    if hasattr(config, "workerinput"):
        # Every worker collects the same tests and writes the same file.
        target = shared_dir(config) / UNITS
        partial = target.with_name(f"{UNITS}.{os.getpid()}")
        partial.write_text(json.dumps(units), encoding="utf-8")
        partial.replace(target)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's load scheduling by units: a chain, a run of short tests, or one test.

    xdist's own ``loadgroup`` does this by renaming tests, which pytest 9
    no longer lets it do; its ``loadscope`` base, given our units, does the
    rest: a unit goes whole to one worker, and a worker gets the next unit
    when it has two tests or fewer left. Other ``--dist`` modes are xdist's.
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    # Units in collection order (chains first), not the largest unit first.
    config.option.loadscopereorder = False

    class ChainScheduling(LoadScopeScheduling):  # type: ignore[misc]
        units: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.units is None:
                # Read once, after every worker has collected (and written it).
                path = config.stash[_shared_key] / UNITS
                self.units = json.loads(path.read_text(encoding="utf-8"))
            return self.units.get(nodeid, nodeid)

    return ChainScheduling(config, log)


@pytest.fixture(autouse=True)
def nice_short_tests(request: pytest.FixtureRequest) -> None:
    """A worker lowers its CPU priority once it runs anything but a chain.

    Chains come first in the queue, so a worker that has left its chain
    never gets another: the bots' suites and the image builds keep their
    priority, and the short tests use what CPU they leave.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and chain_of(request.node, 0) is None and os.getpriority(os.PRIO_PROCESS, 0) < 10:
        os.setpriority(os.PRIO_PROCESS, 0, 10)


def combination_params() -> list[pytest.param]:
    return [pytest.param(c, id=c.id) for c in matrix.combinations()]


def tier_params(runtime: str) -> list[pytest.param]:
    """matrix.tier_combinations(runtime) as test parameters, named by their answers."""
    return [pytest.param(a, id=matrix.tier_id(a)) for a in matrix.tier_combinations(runtime)]
