"""Shared fixtures: the whole matrix rendered once per test session."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import linters
import matrix

# The linters live next to the interpreter running the tests; rendered
# projects' hooks and actionlint's shellcheck integration look them up on PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


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
def rendered_matrix() -> Iterator[RenderedMatrix]:
    root = matrix.scratch_dir("crb-matrix-")
    jobs = {combo.id: combo.answers for combo in matrix.combinations()}
    results = matrix.render_all(jobs, root)
    yield RenderedMatrix(
        trees={k: v for k, v in results.items() if isinstance(v, Path)},
        errors={k: v for k, v in results.items() if isinstance(v, str)},
    )
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def matrix_files(rendered_matrix: RenderedMatrix) -> list[linters.DistinctFile]:
    return linters.distinct_files(rendered_matrix.trees)


@pytest.fixture(scope="session")
def matrix_lint(matrix_files: list[linters.DistinctFile]) -> dict[str, tuple[int, list[str]]]:
    return linters.lint_all(matrix_files)


def combination_params() -> list[pytest.param]:
    return [pytest.param(c, id=c.id) for c in matrix.combinations()]
