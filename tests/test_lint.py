"""Every rendered file passes its ecosystem's linter, across the whole matrix."""

from __future__ import annotations

import pytest

import linters

LINTER_NAMES = [linter.name for linter in linters.LINTERS]


@pytest.mark.parametrize("name", LINTER_NAMES)
def test_linter_is_clean(name: str, matrix_lint: dict[str, tuple[int, list[str]]]) -> None:
    count, findings = matrix_lint[name]
    # A linter that selected nothing proves nothing: every kind of file the
    # template promises exists in at least one combination.
    assert count > 0, f"{name} found no files to lint"
    assert not findings, "\n\n".join(findings)


def test_every_file_has_a_linter(matrix_files: list[linters.DistinctFile]) -> None:
    assert not linters.unlinted(matrix_files), (
        "no linter claims these files; add one to tests/linters.py or list them as plain text"
    )


def test_linters_catch_a_bad_file(tmp_path) -> None:
    """The harness itself fails on findings: one broken file per linter kind."""
    samples = {
        "bad.py": "import os\nx=1\n",
        "bad.yml": "a:  b\n",
        "Dockerfile": "FROM python\nRUN apt-get install -y curl\n",
        "bad.sh": "#!/bin/sh\necho $1\n",
        "bad.toml": 'a  =  "b"\n',
        "bad.md": "# Title\n# Title\n",
        ".env.example": "lower=1\n",
        # An explicit any (typescript-eslint), a missing semicolon (Prettier)
        # and a string where a number belongs (tsc).
        "bad.ts": "export const x: any = 1\nexport const y: number = 'y';\n",
        "node/package.json": '{"name":"x"}\n',
    }
    files = []
    for name, text in samples.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
        files.append(linters.DistinctFile(name, tmp_path / name, ("sample",)))
    results = linters.lint_all(files)
    for name in (
        "ruff-check",
        "ruff-format",
        "yamllint",
        "hadolint",
        "shellcheck",
        "taplo-format",
        "markdown",
        "dotenv-linter",
        "typescript",
        "prettier-json",
    ):
        count, findings = results[name]
        assert count == 1 and findings, f"{name} did not flag its bad sample"


def test_whitespace_allows_code_its_own_blank_lines_in_markdown(tmp_path) -> None:
    """A Python example in Markdown keeps PEP 8's two blank lines; prose keeps one."""
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n```python\nimport os\n\n\ndef f(): ...\n```\n\nText.\n")
    assert linters.check_whitespace([page]) == []
    page.write_text("# Page\n\n\nText.\n")
    assert linters.check_whitespace([page]) == [f"{page}:3: more than 1 blank line(s) in a row"]
