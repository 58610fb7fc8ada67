"""The tiers that run a generated bot cover the matrix pairwise, read from copier.yml.

A bot's own suite, its image replays and its CI checks run on
matrix.tier_combinations(runtime), not on all 960 combinations. These tests
prove, from the full matrix rather than from the covering array's own
candidates, what docs/testing.md promises of that choice.
"""

from __future__ import annotations

import itertools
import re

import matrix


def _scoped(answers: dict) -> dict:
    """A matrix combination's TIER_SCOPE answers, as the tiers write them."""
    return {k: answers[k] for k in matrix.TIER_SCOPE if k in answers}


def _tiers() -> list[dict]:
    return [t for runtime in matrix.choices("runtime") for t in matrix.tier_combinations(runtime)]


def test_every_pair_of_values_runs_in_some_tier() -> None:
    needed = set()
    for combo in matrix.combinations():
        needed |= matrix.value_pairs(_scoped(combo.answers))
    covered = set().union(*(matrix.value_pairs(t) for t in _tiers()))
    assert needed, "the matrix has no pairs: TIER_SCOPE names no question of copier.yml"
    assert needed <= covered, f"pairs no tier runs: {sorted(needed - covered, key=str)}"
    # Every question of the scope varies in the tiers, each value at least once.
    for name in matrix.TIER_SCOPE:
        seen = {t[name] for t in _tiers() if name in t}
        assert seen == set(matrix.choices(name)), name


def test_every_runtime_runs_each_of_its_bots_modules() -> None:
    """Each (runtime, database, private backups) variant of the bot's code runs once at least."""
    needed = {matrix.bot_code(c.answers) for c in matrix.combinations()}
    covered = {matrix.bot_code(t) for t in _tiers()}
    assert needed == covered


def test_tier_combinations_are_valid_and_few() -> None:
    tiers = _tiers()
    for answers in tiers:
        assert not matrix.errors(matrix.complete({**matrix.REQUIRED_ANSWERS, **answers})), answers
    ids = [matrix.tier_id(t) for t in tiers]
    assert len(set(ids)) == len(ids), ids
    # Far fewer than the full product of the scope, which is what they stand for.
    product = len(list(itertools.product(*(matrix.choices(n) for n in matrix.TIER_SCOPE))))
    assert len(tiers) <= product // 4, (len(tiers), product)


def test_each_runtime_lists_its_plainest_first_and_richest_last() -> None:
    for runtime in matrix.choices("runtime"):
        tiers = matrix.tier_combinations(runtime)
        first, last = tiers[0], tiers[-1]
        assert (first["database"], first["redis"]) == ("none", False), first
        assert matrix.private_backups(last) and last["redis"], last
        assert last["database"] == matrix.choices("database")[0], last


def test_docs_show_the_covering_array_as_it_is() -> None:
    """docs/testing.md's table is the array the tiers run, row for row."""
    text = (matrix.ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    section = text.split("### The tiers: a pairwise covering array", 1)[1]
    rows = re.findall(r"^\| (python|node) \| (\w+) \| (yes|no) \| ([\w-]+) \|$", section, re.M)
    expected = [
        (
            t["runtime"],
            t["database"],
            "yes" if t["redis"] else "no",
            t["backup_path"] if t.get("backups") else ("no" if "backups" in t else "-"),
        )
        for t in _tiers()
    ]
    assert rows == expected
    assert f"Today the array is {len(expected)} bots" in section


def test_the_drills_the_tiers_skip_are_the_ones_named(tree_for) -> None:
    """What runs_drills() skips elsewhere is exactly the drills: a marker, a describe title."""
    python = tree_for(matrix.tier_combinations("python")[-1]) / "tests" / "test_leader.py"
    blocks = re.split(r"\n\n\n", python.read_text(encoding="utf-8"))
    tests = [b for b in blocks if re.search(r"^def test_", b, re.M)]
    drills = [b for b in tests if "start_pair(" in b]
    assert drills and all("@pytest.mark.drill\n" in b for b in drills)
    assert not [b for b in tests if "@pytest.mark.drill" in b and b not in drills]

    node = tree_for(matrix.tier_combinations("node")[-1]) / "tests" / "leader.test.ts"
    titles = re.findall(r'^describe\("([^"]+)"', node.read_text(encoding="utf-8"), re.M)
    pattern = re.compile(matrix.NODE_DRILLS.split("=", 1)[1])
    skipped = [t for t in titles if pattern.search(t)]
    assert skipped == ["drills: the redeploy lease under faults"], titles
