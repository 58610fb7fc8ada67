"""Render and lint the whole matrix, and print how long it takes.

    uv run python benchmarks/matrix.py [--keep DIR] [--suite] [--bots]

Prints the number of combinations, the distinct files linted, wall seconds
and seconds per combination. Target on a 2-core machine: at most 0.08 s per
combination over the full product of the structural questions.

--suite also runs the template's whole test suite the way README.md says
(``uv run pytest`` from the repository root) and prints its wall seconds
against the 900 s target. --bots renders the Python tier bots (the
covering array of tests/test_generated_python.py), installs each with ``uv
sync --locked`` and times the project's own ``uv run pytest`` against the
real services, against the 45 s target. It prints "targets met" or
"TARGETS MISSED" last, and exits 1 when a target is missed, a
combination did not render or a linter found something.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_generated_python import _environment, _render, refresh_locks

import linters
import matrix

TARGET_SECONDS_PER_COMBINATION = 0.08
#: The template's whole suite (README.md's command), wall seconds on 2 cores.
TARGET_SUITE_SECONDS = 900.0
#: A generated bot's own pytest, wall seconds on 2 cores, idle.
TARGET_BOT_SECONDS = 45.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="render into DIR and keep it")
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite")
    parser.add_argument("--bots", action="store_true", help="also time each generated bot's tests")
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

    root = args.keep or matrix.scratch_dir("crb-matrix-")
    combos = matrix.combinations()
    started = time.perf_counter()
    matrix.template_copy()
    results = matrix.render_all({c.id: c.answers for c in combos}, root)
    rendered = time.perf_counter()
    errors = {k: v for k, v in results.items() if isinstance(v, str)}
    trees = {k: v for k, v in results.items() if isinstance(v, Path)}
    files = linters.distinct_files(trees)
    lint = linters.lint_all(files)
    finished = time.perf_counter()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)

    wall = finished - started
    findings = sum(len(f) for _, f in lint.values())
    total_files = (
        sum(1 for t in trees.values() for p in t.rglob("*") if p.is_file()) if args.keep else None
    )
    print(f"cores                        {len(os.sched_getaffinity(0))}")
    print(f"combinations                 {len(combos)}")
    print(f"render errors                {len(errors)}")
    if total_files is not None:
        print(f"files rendered               {total_files}")
    print(f"distinct files linted        {len(files)}")
    print(f"linters run                  {sum(1 for n, _ in lint.values() if n)}")
    print(f"lint findings                {findings}")
    for name, (_, found) in lint.items():
        for finding in found:
            print(f"  {name}: {finding}")
    print(f"render seconds               {rendered - started:.2f}")
    print(f"lint seconds                 {finished - rendered:.2f}")
    print(f"wall seconds                 {wall:.2f}")
    per = wall / len(combos)
    verdict = "within" if per <= TARGET_SECONDS_PER_COMBINATION else "OVER"
    target = TARGET_SECONDS_PER_COMBINATION
    print(f"seconds per combination      {per:.3f} ({verdict} the {target:.2f} s target)")

    met = per <= TARGET_SECONDS_PER_COMBINATION and not errors and not findings
    if args.bots:
        met &= time_bots()
    if args.suite:
        met &= time_suite()
    print("targets met" if met else "TARGETS MISSED")
    return 0 if met else 1


def time_suite() -> bool:
    """Run README.md's `uv run pytest` from the repository root; print its wall time."""
    # The uv of this environment, as .tools/bin/uv is for README's command.
    uv = refresh_locks.uv_binary()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST_"))}
    started = time.perf_counter()
    status = subprocess.run([uv, "run", "pytest"], cwd=matrix.ROOT, env=env, check=False)
    wall = time.perf_counter() - started
    ok = status.returncode == 0 and wall <= TARGET_SUITE_SECONDS
    verdict = "within" if wall <= TARGET_SUITE_SECONDS else "OVER"
    outcome = "passed" if status.returncode == 0 else f"FAILED (exit {status.returncode})"
    print(f"suite                        {outcome}")
    target = f"{TARGET_SUITE_SECONDS:.0f} s target"
    print(f"suite wall seconds           {wall:.1f} ({verdict} the {target})")
    return ok


def time_bots() -> bool:
    """Time each Python tier bot's own `uv run pytest`, after `uv sync --locked`."""
    uv = refresh_locks.uv_binary()
    ok = True
    with tempfile.TemporaryDirectory(prefix="crb-bots-") as scratch:
        for wanted in matrix.tier_combinations("python"):
            name = matrix.tier_id(wanted)
            project, answers = _render(wanted, Path(scratch) / name)
            env = _environment(answers)
            subprocess.run([uv, "sync", "--locked", "--quiet"], cwd=project, env=env, check=True)
            started = time.perf_counter()
            status = subprocess.run(
                [uv, "run", "--locked", "pytest", "-q", "-p", "no:cacheprovider"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.perf_counter() - started
            if status.returncode != 0:
                print(status.stdout[-4000:] + status.stderr[-2000:], file=sys.stderr)
            within = status.returncode == 0 and wall <= TARGET_BOT_SECONDS
            ok &= within
            verdict = "within" if wall <= TARGET_BOT_SECONDS else "OVER"
            outcome = "" if status.returncode == 0 else f", FAILED (exit {status.returncode})"
            label = f"bot {name} seconds"
            target = f"{TARGET_BOT_SECONDS:.0f} s target{outcome}"
            print(f"{label:<44} {wall:.1f} ({verdict} the {target})")
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
