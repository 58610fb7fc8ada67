"""Render and lint the whole matrix, and print how long it takes.

    uv run python benchmarks/matrix.py [--keep DIR]

Prints the number of combinations, the distinct files linted, wall seconds
and seconds per combination. Target on a 2-core machine: at most 0.10 s per
combination over the full product of the structural questions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import linters
import matrix

TARGET_SECONDS_PER_COMBINATION = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="render into DIR and keep it")
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
    print(f"render seconds               {rendered - started:.2f}")
    print(f"lint seconds                 {finished - rendered:.2f}")
    print(f"wall seconds                 {wall:.2f}")
    per = wall / len(combos)
    verdict = "within" if per <= TARGET_SECONDS_PER_COMBINATION else "OVER"
    target = TARGET_SECONDS_PER_COMBINATION
    print(f"seconds per combination      {per:.3f} ({verdict} the {target:.2f} s target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
