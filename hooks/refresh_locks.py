"""Refresh the kept uv.lock files that generated Python projects start with.

A generated project must pass `uv sync --locked` on its first commit, and
copying the template must need no network, so the template keeps one lock per
dependency set under locks/ and the project's uv.lock includes the right one.
The dependency sets are not listed here: every Python combination of
copier.yml is rendered (through tests/matrix.py) and grouped by the
pyproject.toml it produces, so a new dependency in the template shows up as a
new or changed set on its own.

For each set this renders the template with a placeholder project name, copies
the current kept lock beside it (so unchanged pins stay where they are), runs
`uv lock` and stores the result under the set's key. uv.lock.jinja swaps the
placeholder for the real project name and moves its package block to where uv
sorts that name, so the rendered lock is byte for byte the one uv writes.

    .venv/bin/python hooks/refresh_locks.py            # relock what changed
    .venv/bin/python hooks/refresh_locks.py --upgrade  # newest allowed versions
    .venv/bin/python hooks/refresh_locks.py --check    # fail if a lock is stale
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "locks"
sys.path.insert(0, str(ROOT / "tests"))

import matrix  # noqa: E402  (tests/matrix.py, found through the path above)

#: The project name the kept locks carry; uv.lock.jinja replaces it.
PLACEHOLDER = "lockfile-placeholder"
#: The interpreter uv resolves with (any supported one gives the same lock).
LOCK_PYTHON = "3.13"


def lock_key(answers: dict[str, Any]) -> str:
    """The kept lock a project with these answers uses (mirrors uv.lock.jinja)."""
    redis = "redis" if answers["redis"] else "no-redis"
    iac = "iac" if answers["railway_config"] == "iac" else "no-iac"
    # The bot's own backups (backup_path=railway) add their dependencies.
    backups = "-backups" if matrix.private_backups(answers) else ""
    return f"{answers['database']}-{redis}-{iac}{backups}"


def python_combinations() -> list[dict[str, Any]]:
    """Complete answers of every valid combination that renders a Python project."""
    return [
        matrix.complete({**matrix.REQUIRED_ANSWERS, **combo.answers})
        for combo in matrix.combinations()
        if combo.answers.get("runtime") == "python"
    ]


def dependency_sets() -> dict[str, dict[str, Any]]:
    """One representative set of structural answers per kept lock."""
    sets: dict[str, dict[str, Any]] = {}
    for answers in python_combinations():
        sets.setdefault(lock_key(answers), answers)
    return dict(sorted(sets.items()))


def interpreter(version: str) -> str:
    """The path of an installed CPython of this minor version (pyenv or PATH)."""
    pyenv = shutil.which("pyenv")
    if pyenv:
        found = subprocess.run(
            [pyenv, "versions", "--bare"], capture_output=True, text=True, check=False
        ).stdout.split()
        for name in sorted(found, reverse=True):
            if name == version or name.startswith(f"{version}."):
                prefix = subprocess.run(
                    [pyenv, "prefix", name], capture_output=True, text=True, check=True
                ).stdout.strip()
                return str(Path(prefix) / "bin" / "python3")
    path = shutil.which(f"python{version}")
    if path is None:
        raise SystemExit(f"no Python {version} found (pyenv or python{version} on PATH)")
    return path


def uv_binary() -> str:
    """The uv to run: $UV, the template's pinned one, or the real one on PATH.

    A pyenv shim on PATH is resolved to the real file: a shim picks its Python
    from the .python-version of the directory it runs in, and a rendered
    project's version may be one without uv installed.
    """
    if explicit := os.environ.get("UV"):
        return explicit
    # The template's dev environment pins uv; the locks are written with it.
    pinned = Path(sys.executable).parent / "uv"
    if pinned.is_file():
        return str(pinned)
    found = shutil.which("uv")
    if found is None:
        raise SystemExit("uv is not on PATH")
    if "shims" in Path(found).parts and (pyenv := shutil.which("pyenv")):
        real = subprocess.run(
            [pyenv, "which", "uv"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if real.returncode == 0:
            return real.stdout.strip()
    return found


def uv_env(python_version: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_PYTHON"] = interpreter(python_version)
    return env


def render_without_lock(
    answers: dict[str, Any], dst: Path, *, lock: str = "uv.lock", src: Path | None = None
) -> Path:
    """Render the template with the placeholder name; the lock itself is left out."""
    structural = {name: answers[name] for name in matrix.STRUCTURAL if name in answers}
    import copier

    copier.run_copy(
        str(src or matrix.template_copy()),
        str(dst),
        data={**matrix.REQUIRED_ANSWERS, **structural, "project_slug": PLACEHOLDER},
        defaults=True,
        quiet=True,
        unsafe=False,
        overwrite=True,
        exclude=[lock],
    )
    return dst


def refresh(key: str, answers: dict[str, Any], *, upgrade: bool, check: bool) -> bool:
    """Lock one dependency set; returns whether the kept lock changed (or is stale)."""
    kept = LOCKS / f"{key}.lock"
    with tempfile.TemporaryDirectory(prefix=f"lock-{key}-") as tmp:
        project = render_without_lock(answers, Path(tmp) / "project")
        if kept.exists():
            shutil.copyfile(kept, project / "uv.lock")
        command = [uv_binary(), "lock", "--quiet"]
        if check:
            command.append("--check")
        elif upgrade:
            command.append("--upgrade")
        result = subprocess.run(
            command, cwd=project, env=uv_env(LOCK_PYTHON), capture_output=True, text=True
        )
        if result.returncode != 0:
            if check:
                print(f"{kept.name}: stale\n{result.stderr}", file=sys.stderr)
                return True
            raise SystemExit(f"uv lock failed for {key}:\n{result.stdout}{result.stderr}")
        if check:
            return False
        text = (project / "uv.lock").read_text(encoding="utf-8")
    refuse_jinja(key, text)
    if f'name = "{PLACEHOLDER}"' not in text:
        raise SystemExit(f"{key}: the lock does not name the placeholder project")
    changed = not kept.exists() or kept.read_text(encoding="utf-8") != text
    if changed:
        kept.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--upgrade", action="store_true", help="move every pin to its newest")
    mode.add_argument("--check", action="store_true", help="only report stale locks")
    args = parser.parse_args(argv)

    LOCKS.mkdir(exist_ok=True)
    sets = dependency_sets()
    changed = [
        key
        for key, answers in sets.items()
        if refresh(key, answers, upgrade=args.upgrade, check=args.check)
    ]
    return finish(set(sets), changed, ".lock", check=args.check)


def refuse_jinja(key: str, text: str) -> None:
    """Stop when a lock holds a Jinja delimiter: it is included through Jinja."""
    for marker in ("{{", "{%", "{#"):
        if marker in text:
            raise SystemExit(f"{key}: the lock contains {marker!r}, which Jinja would render")


def orphans(keys: set[str], suffix: str) -> list[str]:
    """The kept locks, named ``<key><suffix>``, whose key no dependency set has."""
    return sorted(p.name for p in LOCKS.glob(f"*{suffix}") if p.name[: -len(suffix)] not in keys)


def finish(keys: set[str], changed: list[str], suffix: str, *, check: bool) -> int:
    """Remove (or, with ``check``, report) kept locks no set uses; say what changed.

    The exit status of a refresh: 1 when ``check`` found a stale or orphaned lock.
    """
    unused = orphans(keys, suffix)
    for name in unused:
        if check:
            print(f"{name}: no dependency set uses it", file=sys.stderr)
        else:
            (LOCKS / name).unlink()
    verb = "stale" if check else "updated"
    print(f"{len(keys)} dependency sets; {verb}: {', '.join(changed) or 'none'}")
    if unused:
        print(f"{'orphaned' if check else 'removed'}: {', '.join(unused)}")
    return 1 if check and (changed or unused) else 0


if __name__ == "__main__":
    raise SystemExit(main())
